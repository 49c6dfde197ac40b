#if canImport(Glibc)
import Glibc
#endif

/// Opens an input file for reading, with its size for progress reports.
enum InputFile {
    /// - Throws: ``IOError`` naming the file and the system's reason.
    static func open(_ path: String) throws -> (file: UnsafeMutablePointer<FILE>, size: Int) {
        guard let f = fopen(path, "rb") else {
            throw IOError(file: path, line: 0, column: 0, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        return (f, fstat(fileno(f), &st) == 0 ? Int(st.st_size) : 0)
    }
}
