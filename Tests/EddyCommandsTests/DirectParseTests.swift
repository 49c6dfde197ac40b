import ArgumentParser
import EddyHostTestSupport
import Foundation
import Testing

@testable import EddyCommands

/// `eddy eval`'s command line is read without ArgumentParser first (Sources/EddyCommands/
/// DirectArguments.swift, EvalCommand+DirectParse.swift): the command it builds must be the one
/// ArgumentParser builds, option for option, and every line it does not take as it is must be left
/// to ArgumentParser (which words the errors).
@Suite struct DirectParseTests {
    /// Every stored value of a command, as `dump` prints it (the property wrappers' parsed values).
    static func fields(_ command: Any) -> String {
        var text = ""
        dump(command, to: &text)
        return text
    }

    /// The command ArgumentParser builds for `eddy eval ARGS` at the root, or nil when it refuses it.
    static func byArgumentParser(_ arguments: [String]) -> EvalCommand? {
        (try? EddyCommand.parseAsRoot(["eval"] + arguments)) as? EvalCommand
    }

    /// Both readings of `arguments`: the direct one must be nil or equal to ArgumentParser's.
    static func compare(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) -> Bool? {
        let full = byArgumentParser(arguments)
        guard let direct = EvalSettings.parsedDirectly(arguments[...]) else { return nil }
        #expect(
            full != nil, "read directly but refused by ArgumentParser: \(arguments)", sourceLocation: sourceLocation)
        if let full {
            #expect(fields(direct) == fields(full.settings), "\(arguments)", sourceLocation: sourceLocation)
        }
        return full != nil
    }

    @Test func everyOptionOfEvalIsReadAsArgumentParserReadsIt() throws {
        // Each option with a value of its own, then all of them at once, both spellings.
        let values: [(String, String)] = [
            ("where", "-fare > -3 and city = 'x'"), ("select", "count(*), sum(a) as s"), ("format", "csv"),
            ("schema", "zip:utf8"), ("input-format", "parquet"), ("max-record-bytes", "4096"),
            ("batch-rows", "1000"), ("threads", "3"), ("compression", "storage"), ("plugin-dir", "/tmp/p d"),
            ("probe-timeout", "2.5"), ("max-plugin-bytes", "1000000"), ("trusted-keys", "keys"), ("verify", "full"),
            ("verify-time-limit", "7"),
        ]
        let flags = [
            "explain", "no-zone-maps", "no-confine", "report-memory", "no-probe", "allow-insecure-dir",
            "require-signed",
        ]
        var taken = 0
        for (name, value) in values {
            for line in [["f.csv", "--\(name)", value], ["--\(name)=\(value)", "f.csv"]] {
                // --trusted-keys names a directory that must exist: ArgumentParser's validate() refuses
                // it, and so must the direct reading.
                if let equal = Self.compare(line), equal { taken += 1 }
            }
        }
        for flag in flags where flag != "require-signed" {
            if let equal = Self.compare(["f.csv", "--\(flag)"]), equal { taken += 1 }
        }
        let all =
            values.filter { $0.0 != "trusted-keys" }.flatMap { ["--\($0.0)", $0.1] } + ["f.jsonl"]
            + flags.filter { $0 != "require-signed" }.map { "--\($0)" }
        #expect(Self.compare(all) == true)
        #expect(Self.compare(["only.csv"]) == true)
        // Every option but --trusted-keys (its directory does not exist) was taken directly.
        #expect(taken == (values.count - 1) * 2 + flags.count - 1, "\(taken)")
    }

    @Test func theDirectReadingKnowsEveryOptionEvalHas() {
        // A new option ArgumentParser knows and the direct reading does not would make every line that
        // uses it slower (read twice), and a line that does not use it would leave the new property
        // unset (a trap on first read): add it to EvalCommand+DirectParse.swift.
        let help = EvalCommand.helpMessage(includeHidden: true, columns: 400)
        var names = Set<String>()
        var rest = help[...]
        while let dashes = rest.range(of: "--") {
            let name = rest[dashes.upperBound...].prefix { $0.isLetter || $0 == "-" }
            if !name.isEmpty { names.insert(String(name)) }
            rest = rest[dashes.upperBound...]
        }
        names.subtract(["help", "help-hidden", "version"])
        let known = Set(EvalSettings.directOptions.keys).union(EvalSettings.directFlags)
        #expect(names.subtracting(known).isEmpty, "not read directly: \(names.subtracting(known).sorted())")
        #expect(known.subtracting(names).isEmpty, "read directly but not eval's: \(known.subtracting(names).sorted())")
        #expect(names.count >= 20, "the help text was not read: \(names.sorted())")
    }

    @Test func linesTheDirectReadingLeavesToArgumentParser() {
        // Each is either an error ArgumentParser words, or a form only it reads (short names, `--`,
        // repeats, help); the direct reading must decline all of them.
        let declined: [[String]] = [
            [], ["a.csv", "b.csv"], ["a.csv", "--threads", "x"], ["a.csv", "--threads", "0"],
            ["a.csv", "--threads", "-1"], ["a.csv", "--format"], ["a.csv", "--format", "--explain"],
            ["a.csv", "--nope"], ["a.csv", "--explain", "--explain"], ["a.csv", "--format", "csv", "--format", "json"],
            ["a.csv", "-h"], ["a.csv", "--help"], ["--", "a.csv"], ["-"], ["a.csv", "--verify", "sometimes"],
            ["a.csv", "--probe-timeout", "0"], ["a.csv", "--compression", "tiny"], ["a.csv", "--explain=yes"],
            ["a.csv", "--require-signed"], ["a.csv", "--max-record-bytes", "0"], ["a.csv", "--batch-rows", "1e3"],
            ["a.csv", "--verify-time-limit", "nan"], ["a.csv", "--where"], ["a.csv", "-x"], ["a.csv", "---where", "x"],
            ["a.csv", "--where", "--", "--select", "count(*)"],
        ]
        for line in declined {
            #expect(EvalSettings.parsedDirectly(line[...]) == nil, "read directly: \(line)")
        }
    }

    @Test func seededLinesReadTheSameBothWays() {
        // Lines put together from pieces that sit at the edges of both readers: values that look like
        // options, empty ones, `=` inside values, numbers ArgumentParser's Int and Double read or not.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        let pieces: [[String]] = [
            ["--where", "-a > 1"], ["--where=a=b"], ["--where", ""], ["--select", "--explain"], ["--select=x,y"],
            ["--format", "json"], ["--format="], ["--format=-x"], ["--threads", "+2"], ["--threads", "2 "],
            ["--threads=256"], ["--threads", "257"], ["--batch-rows", "0x10"], ["--batch-rows", "16777216"],
            ["--probe-timeout", "1e1"], ["--probe-timeout", "inf"], ["--verify", "off"], ["--verify", "quick"],
            ["--verify-time-limit", "3600"], ["--verify-time-limit", "+.5"], ["--max-plugin-bytes", "-5"],
            ["--max-plugin-bytes=9223372036854775807"], ["--max-record-bytes", "1073741824"],
            ["--max-record-bytes", "1073741825"], ["--explain"], ["--no-confine"], ["--schema", "a:i64"],
            ["--input-format", "jsonl"], ["--compression=query"], ["--plugin-dir", " "], ["x.csv"], ["y.parquet"],
            ["--help"], ["-h"], ["--"], ["--no-probe"], ["--allow-insecure-dir"], ["--where", "--help"],
        ]
        var taken = 0
        var lines = 0
        for _ in 0..<400 {
            var line: [String] = []
            for _ in 0..<(1 + next(5)) { line += pieces[next(pieces.count)] }
            lines += 1
            if Self.compare(line) == true { taken += 1 }
        }
        #expect(taken > 20, "only \(taken) of \(lines) lines were read directly")
    }
}
