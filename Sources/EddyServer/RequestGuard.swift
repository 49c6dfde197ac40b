import EddyIO
import EddyQuery
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Refuses requests that do not come from where the server expects, before any handler runs:
/// a `Host` that is not loopback (or the served `--hostname`) gets 421 — a web page reaching a
/// loopback server through DNS rebinding carries its own name there; a foreign `Origin` or a
/// cross-site fetch gets 403; with a token configured, a missing or wrong bearer token gets 401.
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    let options: ServerOptions

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        if let refusal = check(request) { return refusal }
        return try await next(request, context)
    }

    func check(_ request: Request) -> Response? {
        // HTTP/1.1 needs exactly one Host (a second one stays among the fields; it would be ambiguous).
        guard let authority = request.head.authority else {
            return Self.refuse(.badRequest, "a Host header is required")
        }
        if let name = HTTPField.Name("Host"), request.headers[name] != nil {
            return Self.refuse(.badRequest, "more than one Host header")
        }
        let host = Self.hostPart(authority)
        guard isAllowed(host) else {
            return Self.refuse(
                .misdirected,
                "Host '\(escapedForDisplay(authority))' is not served here: use localhost or 127.0.0.1, "
                    + "or start the server with --hostname or --allowed-host \(escapedForDisplay(host)) "
                    + "(a guard against DNS rebinding)")
        }
        if let origin = request.headers[.origin] {
            // Same origin only: an allowed host on another port is another site (a page served on
            // localhost:3000 must not reach this server on localhost:8080).
            guard let host = Self.originHost(origin), isAllowed(host),
                Self.originPort(origin) == Self.port(of: authority, default: "80")
            else {
                return Self.refuse(
                    .forbidden, "requests from origin '\(escapedForDisplay(origin))' are refused (cross-origin)")
            }
        }
        if let name = HTTPField.Name("Sec-Fetch-Site"), let site = request.headers[name],
            site.lowercased() == "cross-site"
        {
            return Self.refuse(.forbidden, "cross-site requests are refused")
        }
        if let token = options.token, request.uri.path != "/health" {
            let given = request.headers[.authorization] ?? ""
            let expected = "Bearer " + token
            guard Self.constantTimeEqual(given, expected) else {
                var r = Self.refuse(
                    .unauthorized,
                    given.isEmpty
                        ? "this server needs a bearer token (Authorization: Bearer …)"
                        : "wrong bearer token")
                r.headers[.wwwAuthenticate] = "Bearer"
                return r
            }
        }
        return nil
    }

    func isAllowed(_ host: String) -> Bool {
        ServerOptions.isLoopback(host) || options.allowedHosts.contains { $0.lowercased() == host.lowercased() }
    }

    /// `host` of `host:port`, `[v6]:port` or a bare name.
    static func hostPart(_ authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.startIndex...close])
        }
        if let colon = authority.lastIndex(of: ":"), authority.firstIndex(of: ":") == colon {
            return String(authority[..<colon])
        }
        return authority
    }

    /// The port of `host:port` or `[v6]:port`; `default` when none is written.
    static func port(of authority: String, default fallback: String) -> String {
        let afterHost =
            authority.hasPrefix("[")
            ? authority.firstIndex(of: "]").map { authority[authority.index(after: $0)...] } ?? ""
            : authority.firstIndex(of: ":").map { authority[$0...] } ?? ""
        guard afterHost.hasPrefix(":"), afterHost.count > 1 else { return fallback }
        return String(afterHost.dropFirst())
    }

    /// The port of an `Origin` value (its scheme's default when none is written); nil for nonsense.
    static func originPort(_ origin: String) -> String? {
        guard let range = origin.range(of: "://") else { return nil }
        let scheme = origin[..<range.lowerBound].lowercased()
        let rest = origin[range.upperBound...]
        let authority =
            rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        return port(of: authority, default: scheme == "https" ? "443" : "80")
    }

    /// The host of an `Origin` value such as `http://localhost:8080`; nil for `null` or nonsense.
    static func originHost(_ origin: String) -> String? {
        guard let range = origin.range(of: "://") else { return nil }
        let rest = origin[range.upperBound...]
        let authority =
            rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        return hostPart(authority)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    static func refuse(_ kind: EddyFailure.Kind, _ message: String) -> Response {
        let failure = EddyFailure(kind, message)
        return jsonResponse(failure.reply, status: failure.status)
    }
}

/// A JSON response: `value` as ``ReplyJSON`` writes it (keys sorted, a result last).
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(
        status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: ReplyJSON.encode(value))))
}
