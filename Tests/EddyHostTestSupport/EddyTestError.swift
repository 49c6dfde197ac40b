package struct EddyTestError: Error, CustomStringConvertible {
    package let description: String
    package init(_ d: String) { description = d }
}
