/// A command line read without ArgumentParser, for the shapes a well-formed one takes: `--name value`,
/// `--name=value`, flags and positional values.
///
/// ArgumentParser finds a command's options by reflection, and each reflected property costs a search
/// of every protocol conformance of every loaded library: about 13 of the 28 million instructions of a
/// one-shot `eddy eval` of a 10-row file went there. `eddy eval`'s command line is read this way first
/// (``EvalCommand/parsedDirectly(_:)``); anything this reader does not take as it is — an unknown
/// option, a short or repeated one, a value that is not a number where one is wanted, `--`, help — is
/// `nil`, and ArgumentParser parses the whole line again and words any error as it always has.
/// `DirectParseTests` checks that both readings give the same command for every option.
package struct DirectArguments {
    /// How an option takes its value, as ArgumentParser's `SingleValueParsingStrategy` does.
    package enum Value {
        /// The next argument, unless it looks like an option (`.next`).
        case next
        /// The next argument, whatever it is (`.unconditional`).
        case unconditional
    }

    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positional: [String] = []

    /// Reads `arguments`, the options named in `options` (long names without the dashes) and the
    /// flags in `flags`; nil for anything else.
    init?<Arguments: Collection<String>>(_ arguments: Arguments, options: [String: Value], flags known: Set<String>)
    where Arguments.Index == Int {
        // `--` ends the options for ArgumentParser wherever it stands, even where a value is expected.
        guard !arguments.contains("--") else { return nil }
        var i = arguments.startIndex
        while i < arguments.endIndex {
            let argument = arguments[i]
            i += 1
            guard argument.hasPrefix("-") else {
                positional.append(argument)
                continue
            }
            // A single dash (short names, `-`) and the terminator are ArgumentParser's to read.
            guard argument.hasPrefix("--"), argument.count > 2 else { return nil }
            let body = argument.dropFirst(2)
            if let equals = body.firstIndex(of: "=") {
                let name = String(body[..<equals])
                let value = body[body.index(after: equals)...]
                // ArgumentParser takes `--name=` as a missing value.
                guard options[name] != nil, values[name] == nil, !value.isEmpty else { return nil }
                values[name] = String(value)
            } else if let how = options[String(body)] {
                let name = String(body)
                guard values[name] == nil, i < arguments.endIndex else { return nil }
                let value = arguments[i]
                if how == .next && value.hasPrefix("-") { return nil }
                values[name] = value
                i += 1
            } else {
                let name = String(body)
                guard known.contains(name), !flags.contains(name) else { return nil }
                flags.insert(name)
            }
        }
    }

    /// Not a reading this reader takes: ArgumentParser reads the line instead.
    struct Declined: Error {}

    /// The option's value, or `fallback` when it is absent.
    func text(_ name: String, _ fallback: String) -> String { values[name] ?? fallback }

    /// The option's value as `Int(_:)` reads it, or `fallback` when it is absent.
    func integer(_ name: String, _ fallback: Int) throws -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text) else { throw Declined() }
        return value
    }

    /// The option's value as `Double(_:)` reads it, or `fallback` when it is absent.
    func number(_ name: String, _ fallback: Double?) throws -> Double? {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text) else { throw Declined() }
        return value
    }

    /// The option's value as a raw value of `T`, or `fallback` when it is absent.
    func raw<T: RawRepresentable<String>>(_ name: String, _ fallback: T) throws -> T {
        guard let text = values[name] else { return fallback }
        guard let value = T(rawValue: text) else { throw Declined() }
        return value
    }
}
