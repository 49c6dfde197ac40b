import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Signed plugins through the real binary: keygen, sign, verify, and hosts that require signatures.
@Suite struct SigningTests {
    /// Two key pairs: `alice` (trusted) and `mallory` (not).
    final class Keys {
        let root = ScratchDirectory()
        var trusted: String { root.path + "/trusted" }
        var other: String { root.path + "/other" }
        init() throws {
            try FileManager.default.createDirectory(atPath: trusted, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
            #expect(try Eddy.run(["keygen", "--out", trusted, "--name", "alice"]).status == 0)
            #expect(try Eddy.run(["keygen", "--out", other, "--name", "mallory"]).status == 0)
        }
    }

    func sign(_ file: String, _ key: String) throws {
        let r = try Eddy.run(["sign", file, "--key", key])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func keygenWritesAPrivateKeyOnlyItsOwnerCanReadAndNeverOverwrites() throws {
        let keys = try Keys()
        var st = stat()
        #expect(stat(keys.trusted + "/alice.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try String(contentsOfFile: keys.trusted + "/alice.pub", encoding: .utf8).hasPrefix("eddy-ed25519 "))
        let again = try Eddy.run(["keygen", "--out", keys.trusted, "--name", "alice"])
        #expect(again.status == 1 && again.stderr.contains("File exists"), "\(again.stderr)")
        chmod(keys.trusted + "/alice.key", 0o644)
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let loose = try Eddy.run(["sign", dir.path + "/delta.so", "--key", keys.trusted + "/alice.key"])
        #expect(loose.status == 1 && loose.stderr.contains("readable by others"), "\(loose.stderr)")
    }

    @Test func keygenCreatesAMissingKeyDirectoryOwnerOnlyButNotItsParents() throws {
        let base = ScratchDirectory()
        let fresh = base.path + "/keys"
        #expect(try Eddy.run(["keygen", "--out", fresh, "--name", "alice"]).status == 0)
        var st = stat()
        #expect(stat(fresh, &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(stat(fresh + "/alice.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let deep = try Eddy.run(["keygen", "--out", base.path + "/no/such/keys", "--name", "alice"])
        #expect(deep.status == 1 && deep.stderr.contains("cannot create the key directory"), "\(deep.stderr)")
    }

    @Test func verifyNamesTheSignerOrWhatIsWrong() throws {
        let keys = try Keys()
        let dir = ScratchDirectory()
        let original = try Data(contentsOf: URL(fileURLWithPath: PluginFiles.built("EddyPluginDelta")))
        for name in ["good", "untrusted", "unsigned", "tampered", "truncated"] {
            try dir.copy(PluginFiles.built("EddyPluginDelta"), as: name + ".so")
        }
        try sign(dir.path + "/good.so", keys.trusted + "/alice.key")
        try sign(dir.path + "/good.so", keys.trusted + "/alice.key")  // signing again replaces the footer
        try sign(dir.path + "/untrusted.so", keys.other + "/mallory.key")
        try sign(dir.path + "/tampered.so", keys.trusted + "/alice.key")
        try sign(dir.path + "/truncated.so", keys.trusted + "/alice.key")
        let signed = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/good.so"))
        #expect(signed.prefix(original.count) == original && signed.count - original.count < 200)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: dir.path + "/tampered.so"))
        try handle.seek(toOffset: 5000)
        try handle.write(contentsOf: Data([0x58]))
        try handle.close()
        truncate(dir.path + "/truncated.so", off_t(signed.count - 20))
        func verify(_ name: String) throws -> Eddy.Result {
            try Eddy.run(["verify", dir.path + "/\(name).so", "--trusted-keys", keys.trusted])
        }
        let good = try verify("good")
        #expect(
            good.status == 0 && good.stdout.contains("signed by alice") && good.stdout.contains("trusted"), "\(good)")
        let expectations = [
            ("untrusted", "signed by an untrusted key: 'mallory'"), ("unsigned", "unsigned"),
            ("tampered", "does not match the file's contents (changed after signing by 'alice')"),
            ("truncated", "truncated after signing"),
        ]
        for (name, message) in expectations {
            let r = try verify(name)
            #expect(r.status == 1 && r.stderr.contains(message), "\(name): \(r.stderr)")
        }
    }

    @Test func aHostThatRequiresSignaturesRefusesEveryOtherPluginBeforeItsCodeRuns() throws {
        let keys = try Keys()
        let dir = ScratchDirectory()
        let marker = dir.path + "/PLANTED"
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try sign(dir.path + "/delta.so", keys.trusted + "/alice.key")
        // Code that would leave a mark if it ran, in every way a signature can be wrong.
        for name in ["unsigned", "untrusted", "tampered"] {
            try dir.copy(try HostileFixtures.build(.plant), as: name + ".so")
        }
        try sign(dir.path + "/untrusted.so", keys.other + "/mallory.key")
        try sign(dir.path + "/tampered.so", keys.trusted + "/alice.key")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/tampered.so"))
        var changed = bytes
        changed[100] ^= 0x01
        try changed.write(to: URL(fileURLWithPath: dir.path + "/tampered.so"))
        let r = try Eddy.run(
            ["plugins", "--plugin-dir", dir.path, "--json", "--trusted-keys", keys.trusted, "--require-signed"],
            environment: ["EDDY_TEST_MARKER": marker])
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let rows = Dictionary(
            ((object?["files"] as? [[String: Any]]) ?? []).map {
                (URL(fileURLWithPath: $0["file"] as? String ?? "").lastPathComponent, $0)
            }, uniquingKeysWith: { a, _ in a })
        #expect(
            rows["delta.so"]?["status"] as? String == "loaded" && rows["delta.so"]?["signer"] as? String == "alice",
            "\(rows)")
        #expect((rows["unsigned.so"]?["reason"] as? String)?.hasPrefix("unsigned") == true, "\(rows)")
        #expect((rows["untrusted.so"]?["reason"] as? String)?.contains("untrusted key: 'mallory'") == true, "\(rows)")
        #expect((rows["tampered.so"]?["reason"] as? String)?.contains("changed after signing") == true, "\(rows)")
        #expect(!FileManager.default.fileExists(atPath: marker), "a refused plugin's code ran")
        // Without --require-signed, a signed plugin loads like any other and shows its signer.
        let open = try Eddy.run(["plugins", "--plugin-dir", dir.path])
        #expect(open.stdout.contains("signed by alice (key "), "\(open.stdout)")
        let missing = try Eddy.run(["plugins", "--plugin-dir", dir.path, "--require-signed"])
        #expect(
            missing.status != 0 && missing.stderr.contains("--require-signed needs --trusted-keys"), "\(missing.stderr)"
        )
    }
}

extension SigningTests {
    @Test func trustedKeysMustBeKeptWhereOnlyTheirOwnerCanChangeThem() throws {
        let keys = try Keys()
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try sign(dir.path + "/delta.so", keys.trusted + "/alice.key")
        func load(_ trusted: String) throws -> Eddy.Result {
            try Eddy.run(["plugins", "--plugin-dir", dir.path, "--trusted-keys", trusted, "--require-signed"])
        }
        chmod(keys.trusted, 0o777)
        let open = try load(keys.trusted)
        #expect(
            open.status != 0 && open.stderr.contains("--trusted-keys directory")
                && open.stderr.contains("writable by others"),
            "\(open.stderr)")
        chmod(keys.trusted, 0o755)
        chmod(keys.trusted + "/alice.pub", 0o666)
        let loose = try load(keys.trusted)
        #expect(loose.status != 0 && loose.stderr.contains("key file"), "\(loose.stderr)")
        chmod(keys.trusted + "/alice.pub", 0o644)
        try FileManager.default.createSymbolicLink(
            atPath: keys.trusted + "/other.pub", withDestinationPath: keys.other + "/mallory.pub")
        let linked = try load(keys.trusted)
        #expect(linked.status != 0 && linked.stderr.contains("symbolic link"), "\(linked.stderr)")
        try FileManager.default.removeItem(atPath: keys.trusted + "/other.pub")
        // A point of small order as a "key" would verify signatures anyone can make.
        FileManager.default.createFile(
            atPath: keys.trusted + "/ident.pub",
            contents: Data(("eddy-ed25519 01" + String(repeating: "0", count: 62) + " ident\n").utf8))
        let weak = try load(keys.trusted)
        #expect(weak.status != 0 && weak.stderr.contains("weak key"), "\(weak.stderr)")
    }
}
