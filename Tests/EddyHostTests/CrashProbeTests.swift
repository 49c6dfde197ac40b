@_spi(Host) import Eddy
import EddyHostTestSupport
import Foundation
import Testing

@testable @_spi(Host) import EddyHost

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CrashProbeTests {
    /// A plugin directory holding one built plugin, a private-copy directory of the test's own (0700),
    /// and a work directory holding `trips.csv` (50 rows).
    static func oneShot(_ plugin: String, as name: String) throws -> (
        plugins: ScratchDirectory, shadow: ScratchDirectory, work: ScratchDirectory
    ) {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built(plugin), as: name)
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        let work = ScratchDirectory()
        _ = tripsCSV(work, rows: 50)
        return (dir, shadow, work)
    }

    /// Turns the last passed verdict in the copy directory (the delta build's, under eval's key) into a
    /// refusal made now, as a probe that crashed would have left it.
    static func forgeRefusal(in shadow: ScratchDirectory) throws {
        let verdicts = shadow.path + "/probed.tsv"
        let lines = try String(contentsOfFile: verdicts, encoding: .utf8).split(separator: "\n")
        let last = try #require(lines.last?.split(separator: "\t", omittingEmptySubsequences: false))
        try FileManager.default.removeItem(atPath: verdicts)
        let refusal = [
            String(last[0]), String(last[1]), String(Int(Date().timeIntervalSince1970)), "delta", "1.0.0",
            "crashed in the probe process (killed by signal 11, Segmentation fault); not loaded into the host",
        ].joined(separator: "\t")
        try (refusal + "\n").write(toFile: shadow.path + "/refused.tsv", atomically: false, encoding: .utf8)
    }

    /// `eddy eval` of `sum(fare)` over the work directory's trips with the plugin directory.
    static func sumFare(_ work: ScratchDirectory, _ plugins: ScratchDirectory) -> [String] {
        ["eval", work.path + "/trips.csv", "--plugin-dir", plugins.path, "--select", "sum(fare)", "--format", "csv"]
    }

    @Test func aPluginThatCrashesWhileLoadingIsRefusedAndTheHostCarriesOn() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let report = try pluginReport(dir.path)
        #expect(report["crashing.so"]?["status"] as? String == "rejected")
        #expect(
            (report["crashing.so"]?["reason"] as? String)?.contains("crashed in the probe process (killed by signal 11")
                == true,
            "\(report["crashing.so"] ?? [:])")
        #expect(report["delta.so"]?["status"] as? String == "loaded")
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 200)
        let r = try Eddy.run(["eval", csv, "--plugin-dir", dir.path, "--select", "count(*)", "--format", "csv"])
        #expect(r.status == 0 && r.stdout == "count(*)\n200\n", "\(r.stderr)")
    }

    /// A build that crashes in its probe is refused by each one-shot without a child process once a
    /// probe refused it (the refusal is kept beside the private copies for ten minutes), while
    /// `eddy plugins` probes it again.
    @Test func aOneShotTakesARecentProbeRefusalAsTheVerdict() throws {
        let (dir, shadow, work) = try Self.oneShot("EddyFixtureCrashing", as: "crashing.so")
        let (env, eval) = (["EDDY_SHADOW_DIR": shadow.path], Self.sumFare(work, dir))
        let first = try Eddy.run(eval, environment: env)
        #expect(first.status == 0 && first.stderr.contains("crashed in the probe process"), "\(first.stderr)")
        #expect(!first.stderr.contains("not probed again"), "\(first.stderr)")
        let second = try Eddy.run(eval, environment: env)
        #expect(second.status == 0 && second.stdout == first.stdout, "\(second.stderr)")
        #expect(
            second.stderr.contains("crashed in the probe process")
                && second.stderr.contains("the same bytes are not probed again for 10 minutes"),
            "\(second.stderr)")
        // The diagnostic command says what a probe says now.
        let listed = try Eddy.run(["plugins", "--plugin-dir", dir.path, "--json"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any]
        let row = (object?["files"] as? [[String: Any]])?.first
        #expect(row?["probe"] as? String == "ran" && row?["status"] as? String == "rejected", "\(listed.stdout)")
        // A refusal record only ever refuses: a forged one for a good build's bytes cannot make anything
        // load that would not, and a record past its lifetime is probed again.
        let records = shadow.path + "/refused.tsv"
        let text = (try? String(contentsOfFile: records, encoding: .utf8)) ?? ""
        #expect(text.split(separator: "\n").count >= 2, "\(text)")
        let stale =
            text.split(separator: "\n").map { line -> String in
                var f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                if f.count == 6 { f[2] = String(Int(Date().timeIntervalSince1970) - 3600) }
                return f.joined(separator: "\t")
            }.joined(separator: "\n") + "\n"
        try stale.write(toFile: records, atomically: false, encoding: .utf8)
        let third = try Eddy.run(eval, environment: env)
        #expect(
            third.stderr.contains("crashed in the probe process") && !third.stderr.contains("not probed again"),
            "\(third.stderr)")
    }

    /// `eddy plugins` (another program, so another verdict key) clears a one-shot's refusal when its own
    /// probe of the same bytes passes: the message's advice works.
    @Test func aPassingProbeByEddyPluginsClearsAOneShotRefusal() throws {
        let (dir, shadow, work) = try Self.oneShot("EddyPluginDelta", as: "delta.so")
        let (env, eval) = (["EDDY_SHADOW_DIR": shadow.path], Self.sumFare(work, dir))
        let first = try Eddy.run(eval, environment: env)
        #expect(first.status == 0 && !first.stderr.contains("warning"), "\(first.stderr)")
        // The one-shot's passed verdict, turned into a refusal under the same key (as a probe killed by
        // a crash that does not recur would have left it).
        try Self.forgeRefusal(in: shadow)
        let refused = try Eddy.run(eval, environment: env)
        #expect(refused.stderr.contains("not probed again for 10 minutes"), "\(refused.stderr)")
        let listed = try Eddy.run(["plugins", "--plugin-dir", dir.path], environment: env)
        #expect(listed.status == 0 && listed.stdout.contains("loaded"), "\(listed.stdout) \(listed.stderr)")
        let after = try Eddy.run(eval, environment: env)
        #expect(after.status == 0 && !after.stderr.contains("warning"), "\(after.stderr)")
        #expect(after.stdout == first.stdout)
    }

    /// A build whose code crashes on verification's inputs (a kernel with a data race, under `--verify
    /// full`'s two threads) is kept refused like a wrong answer: a later probe that passes (a lighter
    /// level, another program) neither loads it nor clears the refusal; only other bytes are probed afresh.
    @Test func aCrashWhileItsKernelsAreVerifiedIsKeptLikeAWrongAnswer() throws {
        let dir = ScratchDirectory()
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let shadow = dir.path + "/copies"
        // A probe child that marks verification, as `eddy probe-plugin` does, then dies as a racy kernel did.
        let script = dir.write(
            "crashing-probe.sh", "#!/bin/sh\nprintf '\(PluginProbe.verifyingMark)delta\\n' >&3\nkill -SEGV $$\n")
        #expect(chmod(script, 0o755) == 0)
        let policy = PluginLoadPolicy(registrationTimeout: 3600)
        let crashing = PluginHost(
            session: Session(), shadowDirectory: shadow, probe: PluginProbe(executable: script, arguments: []),
            policy: policy)
        let first = crashing.load(dir.path + "/delta.so")
        #expect(first.status == .rejected, "\(first)")
        #expect(
            first.reason.hasPrefix("crashed in the probe process while its kernels were verified"), "\(first.reason)")
        // The real probe (another probe command: another verdict key) would pass these bytes.
        let passing = PluginHost(
            session: Session(), shadowDirectory: shadow,
            probe: PluginProbe(executable: Eddy.binary, arguments: ["probe-plugin"]), policy: policy)
        let second = passing.load(dir.path + "/delta.so")
        #expect(second.status == .rejected && passing.plugins.isEmpty, "\(second)")
        #expect(second.reason.contains("crashed while it was verified is not loaded again"), "\(second.reason)")
        // Without the mark (a crash while loading or registering) the refusal stays one probe's, as before.
        let records = try String(contentsOfFile: shadow + "/refused.tsv", encoding: .utf8)
        #expect(records.contains("\t\(PrivateCopies.wrongAnswerKey)\t"), "\(records)")
        guard case .failed(let loading) = PluginProbe.outcome(record: [], status: SIGSEGV) else {
            Issue.record("SIGSEGV was not a failure")
            return
        }
        #expect(!PluginProbe.crashedInVerification(loading), "\(loading)")
        // A child killed from outside while it verified (SIGKILL: the OOM killer) says nothing of the plugin.
        guard case .failed(let killed) = PluginProbe.outcome(record: Array("verifying delta\n".utf8), status: SIGKILL)
        else {
            Issue.record("SIGKILL was not a failure")
            return
        }
        #expect(!PluginProbe.crashedInVerification(killed) && !PluginProbe.failureLasts(killed), "\(killed)")
        // A verified build's report after the mark is read as before.
        let ok = PluginProbe.outcome(
            record: Array("verifying delta\nok 2\tdelta\t1.0.0\t12\t-\n".utf8), status: 0)
        #expect(
            ok == .passed(kernels: 2, name: "delta", version: "1.0.0", verified: VerifiedInputs(inputs: 12), uses: nil))
    }

    /// An `.eddy` file whose encoding's plugin file was refused in this run: the error names the refusal,
    /// not "add that plugin to the plugin directory" (it is there).
    @Test func aFileNeedingARefusedPluginSaysWhyItIsNotLoaded() throws {
        let (dir, shadow, work) = try Self.oneShot("EddyPluginDelta", as: "delta.so")
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        let seq = work.write("seq.csv", "id,v\n" + (0..<3000).map { "\(1000 + $0),\($0 % 7)" }.joined(separator: "\n"))
        let eddyFile = work.path + "/seq.eddy"
        let converted = try Eddy.run(["convert", seq, eddyFile, "--plugin-dir", dir.path], environment: env)
        #expect(converted.status == 0, "\(converted.stderr)")
        let eval = ["eval", eddyFile, "--plugin-dir", dir.path, "--select", "sum(id)", "--format", "csv"]
        let loaded = try Eddy.run(eval, environment: env)
        #expect(loaded.status == 0, "\(loaded.stderr)")
        // eval's passed verdict turned into a recent refusal (as a crash in its probe would leave it).
        try Self.forgeRefusal(in: shadow)
        let refused = try Eddy.run(eval, environment: env)
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(
            refused.stderr.contains(
                "needs encoding ext.delta, written by plugin delta 1.0.0, which is not loaded: its file was refused ("
            )
                && refused.stderr.contains("delta.so: crashed in the probe process")
                && !refused.stderr.contains("add that plugin"), "\(refused.stderr)")
        // eddy serve: the worker asks for the plugin to be added; the server says a file was refused.
        let crashing = ScratchDirectory()
        try crashing.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        let server = try Server(pluginDir: crashing.path, arguments: ["--workers", "1"], environment: env)
        try server.waitForPlugin("crashing.so") { $0?["status"] as? String == "rejected" }
        let (code, body) = try server.request("POST", "/eval", json: ["path": eddyFile, "select": "sum(id)"])
        let error = body["error"] as? String ?? ""
        #expect(code >= 400 && code < 500, "\(body)")
        #expect(
            error.contains("needs encoding ext.delta") && error.contains("crashing.so: crashed in the probe process")
                && !error.contains("add that plugin"), "\(error)")
    }

    @Test func aRunningServerSurvivesACrashingPluginDroppedIntoItsDirectory() throws {
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path)
        try dir.copy(PluginFiles.built("EddyFixtureCrashing"), as: "crashing.so")
        try server.waitForPlugin("crashing.so") {
            ($0?["reason"] as? String)?.contains("crashed in the probe process") == true
        }
        let (status, health) = try server.request("GET", "/health")
        #expect(status == 200 && health["status"] as? String == "ok")
        #expect(server.process.isRunning)
    }
}

/// The probe's reading of a child killed by a signal: a Swift runtime trap (SIGILL on x86, SIGTRAP on ARM)
/// is named as one, since "Illegal instruction" reads like a CPU feature the plugin lacks.
@Suite struct ProbeSignalTests {
    @Test func aSwiftTrapIsNamedAsOne() {
        for signal in [SIGILL, SIGTRAP] {
            guard case .failed(let reason) = PluginProbe.outcome(record: [], status: signal) else {
                Issue.record("signal \(signal) was not a failure")
                continue
            }
            #expect(reason.contains("a Swift runtime trap: a force-unwrap of nil"), "\(reason)")
        }
        guard case .failed(let segv) = PluginProbe.outcome(record: [], status: SIGSEGV) else {
            Issue.record("SIGSEGV was not a failure")
            return
        }
        #expect(segv.contains("killed by signal 11") && !segv.contains("Swift runtime trap"), "\(segv)")
        // A crash recurs; a child killed from outside (the OOM killer) or one that could not start does not
        // say anything about the plugin and is not kept as its verdict.
        #expect(PluginProbe.failureLasts(segv))
        guard case .failed(let killed) = PluginProbe.outcome(record: [], status: SIGKILL) else {
            Issue.record("SIGKILL was not a failure")
            return
        }
        #expect(!PluginProbe.failureLasts(killed), "\(killed)")
        #expect(!PluginProbe.failureLasts("could not start the probe process: Resource temporarily unavailable"))
    }
}
