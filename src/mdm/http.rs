//! The HTTP client behind `confine push`: blocking ureq agents (TLS through native-tls, that is the
//! system's OpenSSL and trust store), a cookie jar, bearer authentication with Jamf's OAuth token renewal,
//! timeouts, and retries with exponential backoff and full jitter.
//!
//! What is retried: connection errors, 429 and 5xx, and only for requests marked [`Retry::Idempotent`]
//! (a create is retried by its caller, which first looks whether the failed attempt went through). A 401
//! on an authenticated request renews the token once and resends: that is how a token that expired during
//! a long upload is recovered. Secrets never reach a message: every error text passes [`Client::redact`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ureq::http;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use super::multipart::Multipart;

/// Retries while the server answers 503 (Kandji while it processes an upload): with the backoff capped at a
/// minute, nine minutes at most.
const STILL_PROCESSING_RETRIES: u32 = 14;

/// The longest token lifetime confine believes; a server that claims more (or nothing sensible) is asked
/// again sooner, and a 401 renews the token anyway.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The lifetime assumed when a token answer's `expires_in` is missing, negative or not a number.
const ASSUMED_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Characters of a server's message quoted in an error, after secrets are redacted.
const MAX_QUOTED_CHARS: usize = 300;

/// The longest wait between two attempts, asked for or not.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Response bodies confine reads are records and lists; anything larger is refused.
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Timeouts and retry budget, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub connect_timeout: Duration,
    /// Waiting for a response to an ordinary request, and reading it.
    pub read_timeout: Duration,
    /// Sending an upload and waiting for its response.
    pub upload_timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first backoff; each retry doubles it (up to a minute), with full jitter.
    pub retry_delay: Duration,
}

/// Whether a failed request may simply be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, replacements (PUT, PATCH, an upload onto an existing record): sending twice is harmless.
    Idempotent,
    /// Creates: the caller decides, after looking whether the first attempt went through.
    Never,
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(&'a str, String)>),
    Xml(String),
    Multipart(&'a Multipart),
}

/// A response, read whole (records are small; uploads go the other way).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when the server sent one (Jamf never does; S3 and proxies may).
    pub retry_after: Option<Duration>,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).context("the answer is not the JSON confine expects")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How requests prove who they are.
pub enum Auth {
    /// A static bearer token (Kandji).
    Bearer(String),
    /// Jamf Pro API client credentials, exchanged for short-lived bearer tokens.
    JamfClient {
        client_id: String,
        client_secret: String,
        token: Option<Token>,
    },
}

pub struct Token {
    value: String,
    expires: Instant,
    lifetime: Duration,
}

/// One tenant's connection.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    upload_agent: ureq::Agent,
    settings: Settings,
    auth: RefCell<Auth>,
    /// Jamf Cloud routes a session by cookie (`APBALANCEID`); every cookie set is sent back.
    cookies: RefCell<BTreeMap<String, String>>,
    /// Every secret ever held (credentials, each token), scrubbed from error messages.
    secrets: RefCell<Vec<String>>,
    /// Write calls made, for the report and for `--dry-run`'s promise.
    writes: RefCell<u32>,
    jitter: RefCell<u64>,
    /// The privileges a call needs, named in a 403's message.
    privileges: Privileges,
}

/// The privileges (as the MDM names them) that a method and path need.
pub type Privileges = fn(&str, &str) -> &'static [&'static str];

impl Client {
    pub fn new(base: &str, auth: Auth, settings: &Settings) -> Client {
        let secrets = match &auth {
            Auth::Bearer(token) => vec![token.clone()],
            Auth::JamfClient {
                client_id,
                client_secret,
                ..
            } => vec![client_id.clone(), client_secret.clone()],
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Client {
            base: base.trim_end_matches('/').to_owned(),
            agent: agent(settings, settings.read_timeout),
            upload_agent: agent(settings, settings.upload_timeout),
            settings: settings.clone(),
            auth: RefCell::new(auth),
            cookies: RefCell::new(BTreeMap::new()),
            secrets: RefCell::new(secrets),
            writes: RefCell::new(0),
            jitter: RefCell::new(seed),
            privileges: |_, _| &[],
        }
    }

    /// Names the privileges a refused (403) call needs, from `privileges`.
    pub fn with_privileges(mut self, privileges: Privileges) -> Client {
        self.privileges = privileges;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The tenant is reached over plain http (only loopback test doubles: the spec allows no other).
    pub fn is_plain_http(&self) -> bool {
        self.base.starts_with("http://")
    }

    pub fn writes(&self) -> u32 {
        *self.writes.borrow()
    }

    /// Sends one request (`path` under the tenant, or an absolute URL such as a presigned upload), with
    /// authentication unless `anonymous`, and the retries `retry` allows. Any status is returned: callers
    /// decide what a 404 or a 400 means.
    pub fn send(&self, method: &str, path: &str, body: &Body<'_>, retry: Retry) -> Result<Response> {
        self.send_with(method, path, body, retry, true, true)
    }

    /// [`Client::send`] without the `Authorization` header (token endpoints, presigned uploads).
    pub fn send_anonymous(
        &self,
        method: &str,
        path: &str,
        body: &Body<'_>,
        retry: Retry,
    ) -> Result<Response> {
        self.send_with(method, path, body, retry, false, true)
    }

    /// [`Client::send`], failing on any status outside 2xx with the server's message.
    pub fn expect(&self, method: &str, path: &str, body: &Body<'_>, retry: Retry) -> Result<Response> {
        let response = self.send(method, path, body, retry)?;
        if !response.is_success() {
            bail!("{}", self.describe_failure(method, path, &response));
        }
        Ok(response)
    }

    /// `METHOD path answered STATUS: message`, the message scrubbed of secrets, then cut short (in that
    /// order: a cut first could leave the start of a secret that no longer matches whole).
    pub fn describe_failure(&self, method: &str, path: &str, response: &Response) -> String {
        let message = self.redact(&server_message(&response.text()));
        let mut shown: String = message.chars().take(MAX_QUOTED_CHARS).collect();
        if shown.is_empty() {
            shown = "(no message)".to_owned();
        } else if shown.len() < message.len() {
            shown.push('…');
        }
        let needs = (self.privileges)(method, path);
        let hint = if response.status == 403 && !needs.is_empty() {
            let names: Vec<String> = needs.iter().map(|n| format!("`{n}`")).collect();
            format!(
                " (the API client's role needs the privilege {})",
                names.join(" and ")
            )
        } else {
            String::new()
        };
        format!(
            "{method} {} answered {}: {shown}{hint}",
            self.redact(path_only(path)),
            response.status
        )
    }

    /// Replaces every secret the client holds with `***`, also where a server echoes it percent- or
    /// JSON-encoded.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.borrow().iter().filter(|s| s.len() >= 4) {
            let json = serde_json::to_string(secret).unwrap_or_default();
            let forms = [
                secret.clone(),
                percent_encode(secret),
                json.trim_matches('"').to_owned(),
            ];
            for form in forms {
                text = text.replace(&form, "***");
            }
        }
        text
    }

    fn send_with(
        &self,
        method: &str,
        path: &str,
        body: &Body<'_>,
        retry: Retry,
        authenticate: bool,
        counts_as_write: bool,
    ) -> Result<Response> {
        let is_write = counts_as_write && method != "GET";
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            // Ctrl-C stops a push between requests, never half-way through one.
            crate::interrupt::check()?;
            if is_write {
                *self.writes.borrow_mut() += 1;
            }
            // A token that cannot be had is not worth retrying the request for.
            let bearer = if authenticate { Some(self.token()?) } else { None };
            let outcome = self.attempt(method, path, body, bearer.as_deref());
            let retryable = match &outcome {
                Ok(r) if r.status == 401 && authenticate && !renewed && self.renewable() => {
                    // The token expired on the way (a long upload): renew once and resend.
                    renewed = true;
                    self.forget_token();
                    continue;
                }
                Ok(r) => {
                    r.status == 429 || (retry == Retry::Idempotent && r.status >= 500) || is_unavailable(r)
                }
                Err(_) => retry == Retry::Idempotent,
            };
            // Kandji may take minutes to process a large upload: waiting for it gets a larger budget.
            let still_processing = outcome.as_ref().is_ok_and(is_unavailable);
            let budget = if still_processing {
                self.settings.retries.max(STILL_PROCESSING_RETRIES)
            } else {
                self.settings.retries
            };
            if !retryable || attempt >= budget {
                return outcome.map_err(|e| anyhow::anyhow!(self.redact(&format!("{e:#}"))));
            }
            attempt += 1;
            let asked = outcome.as_ref().ok().and_then(|r| r.retry_after);
            let wait = asked.map_or_else(|| self.backoff(attempt), |d| d.min(MAX_WAIT));
            let why = match &outcome {
                Ok(r) => format!("HTTP {}", r.status),
                Err(e) => self.redact(&format!("{e:#}")),
            };
            crate::progress::note(&format!(
                "{method} {path}: {why}; retry {attempt} of {budget} in {:.1} s",
                wait.as_secs_f64()
            ));
            std::thread::sleep(wait);
        }
    }

    fn attempt(&self, method: &str, path: &str, body: &Body<'_>, bearer: Option<&str>) -> Result<Response> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        // The Classic API answers XML, which confine parses and its test double checks against Jamf's
        // schema; everything else is JSON.
        let accept = if path.starts_with("/JSSResource/") {
            "application/xml"
        } else {
            "application/json"
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", accept);
        // Credentials and the tenant's cookies go to the tenant's origin only, never to an upload host.
        let at_tenant = origin(&url) == origin(&self.base);
        if let Some(token) = bearer.filter(|_| at_tenant) {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let cookies = self.cookie_header();
        if at_tenant && !cookies.is_empty() {
            request = request.header("Cookie", cookies);
        }
        let buffered = |content_type: &str, bytes: Vec<u8>| {
            let length = bytes.len().to_string();
            (content_type.to_owned(), length, std::io::Cursor::new(bytes))
        };
        let (agent, send_body) = match body {
            // A POST without a body still says so, or ureq would announce a chunked one.
            Body::Empty if method == "POST" => {
                request = request.header("Content-Length", "0");
                (
                    &self.agent,
                    ureq::SendBody::from_owned_reader(std::io::Cursor::new(Vec::new())),
                )
            }
            Body::Empty => (&self.agent, ureq::SendBody::none()),
            Body::Multipart(form) => {
                request = request
                    .header("Content-Type", form.content_type())
                    .header("Content-Length", form.len().to_string());
                (
                    &self.upload_agent,
                    ureq::SendBody::from_owned_reader(form.reader()?),
                )
            }
            Body::Json(_) | Body::Form(_) | Body::Xml(_) => {
                let (content_type, length, bytes) = match body {
                    Body::Json(value) => buffered("application/json", serde_json::to_vec(value)?),
                    Body::Form(fields) => {
                        buffered("application/x-www-form-urlencoded", form_urlencode(fields))
                    }
                    Body::Xml(text) => buffered("application/xml", text.clone().into_bytes()),
                    Body::Empty | Body::Multipart(_) => unreachable!("matched above"),
                };
                request = request
                    .header("Content-Type", content_type)
                    .header("Content-Length", length);
                (&self.agent, ureq::SendBody::from_owned_reader(bytes))
            }
        };
        // Every body carries an exact Content-Length: without one ureq would send it chunked, which
        // some servers and proxies refuse.
        let request = request.body(send_body).context("building the request")?;
        let mut response = agent
            .run(request)
            .with_context(|| format!("{method} {}", path_only(&url)))?;
        if at_tenant {
            self.keep_cookies(response.headers());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .with_context(|| format!("reading the answer to {method} {}", path_only(&url)))?;
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }

    fn renewable(&self) -> bool {
        matches!(*self.auth.borrow(), Auth::JamfClient { .. })
    }

    fn forget_token(&self) {
        if let Auth::JamfClient { token, .. } = &mut *self.auth.borrow_mut() {
            *token = None;
        }
    }

    /// The bearer token, renewed first when it is about to expire (within a minute, or half its
    /// lifetime for short-lived tokens).
    fn token(&self) -> Result<String> {
        let (client_id, client_secret) = match &*self.auth.borrow() {
            Auth::Bearer(token) => return Ok(token.clone()),
            Auth::JamfClient {
                token: Some(token), ..
            } if token.expires.saturating_duration_since(Instant::now())
                > (token.lifetime / 2).min(Duration::from_secs(60)) =>
            {
                return Ok(token.value.clone());
            }
            Auth::JamfClient {
                client_id,
                client_secret,
                ..
            } => (client_id.clone(), client_secret.clone()),
        };
        let token = self.jamf_token(&client_id, &client_secret)?;
        let value = token.value.clone();
        self.secrets.borrow_mut().push(value.clone());
        if let Auth::JamfClient { token: slot, .. } = &mut *self.auth.borrow_mut() {
            *slot = Some(token);
        }
        Ok(value)
    }

    /// OAuth client credentials at `/api/v1/oauth/token`, or `/api/oauth/token` on servers without it.
    fn jamf_token(&self, client_id: &str, client_secret: &str) -> Result<Token> {
        let form = Body::Form(vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.to_owned()),
            ("client_secret", client_secret.to_owned()),
        ]);
        // Asking for a token changes nothing on the tenant: not a write.
        let post = |path| self.send_with("POST", path, &form, Retry::Idempotent, false, false);
        let mut response = post("/api/v1/oauth/token")?;
        if response.status == 404 {
            response = post("/api/oauth/token")?;
        }
        if response.status == 400 || response.status == 401 {
            bail!(
                "Jamf Pro refused the API client credentials ({}); check the client id and secret, and that the API client is enabled",
                response.status
            );
        }
        if !response.is_success() {
            bail!(
                "{}",
                self.describe_failure("POST", "/api/v1/oauth/token", &response)
            );
        }
        #[derive(serde::Deserialize)]
        struct OAuth {
            access_token: String,
            #[serde(default)]
            expires_in: Option<serde_json::Value>,
        }
        let answer: OAuth = response.json()?;
        let lifetime = token_lifetime(answer.expires_in.as_ref());
        Ok(Token {
            value: answer.access_token,
            expires: Instant::now() + lifetime,
            lifetime,
        })
    }

    fn keep_cookies(&self, headers: &http::HeaderMap) {
        let mut jar = self.cookies.borrow_mut();
        for value in headers.get_all("set-cookie") {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        let jar = self.cookies.borrow();
        let pairs: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }

    /// Exponential backoff with full jitter: uniform in [0, min(delay · 2^(n-1), 60 s)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .settings
            .retry_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(MAX_WAIT);
        let mut x = *self.jitter.borrow();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *self.jitter.borrow_mut() = x;
        cap.mul_f64((x % 1000) as f64 / 1000.0)
    }
}

/// A token's lifetime from the `expires_in` a server sent: whole seconds, at most a day; a missing,
/// negative or non-numeric value counts as a minute (the token is renewed on a 401 anyway).
fn token_lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    match expires_in.and_then(serde_json::Value::as_f64) {
        Some(seconds) if seconds >= 1.0 => {
            Duration::from_secs_f64(seconds.min(MAX_TOKEN_LIFETIME.as_secs_f64()))
        }
        _ => ASSUMED_TOKEN_LIFETIME,
    }
}

fn agent(settings: &Settings, response_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirect would carry the bearer token to wherever it points.
        .max_redirects(0)
        .timeout_connect(Some(settings.connect_timeout))
        .timeout_send_body(Some(response_timeout))
        .timeout_recv_response(Some(response_timeout))
        .timeout_recv_body(Some(settings.read_timeout))
        .user_agent(concat!("confine/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .new_agent()
}

/// 503: the server did not take the request (Kandji answers it while an uploaded file is still being
/// processed, whatever its text says; Kandji's own iructl retries any 503 for up to 300 s), so any
/// request may be sent again, after a wait.
fn is_unavailable(response: &Response) -> bool {
    response.status == 503
}

/// The human part of an error answer: Jamf Pro's `errors[].description`, Kandji's `detail`, Classic's
/// HTML `<p>Error: …</p>`, else the text itself; one line (the caller redacts, then shortens it).
fn server_message(text: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            let errors = v["errors"].as_array().map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["code"].as_str().unwrap_or_default(),
                            e["description"].as_str().unwrap_or_default()
                        )
                        .trim()
                        .to_owned()
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            errors
                .or_else(|| v["detail"].as_str().map(str::to_owned))
                .or_else(|| v["error_description"].as_str().map(str::to_owned))
        });
    let message =
        from_json.unwrap_or_else(
            || match text.split("<p>").nth(1).and_then(|p| p.split("</p>").next()) {
                Some(p) => p.to_owned(),
                None => text.to_owned(),
            },
        );
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `scheme://host[:port]` of a URL, lower-cased: what a cookie or a credential is scoped to.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

/// The path of a URL, without query (a presigned URL's query is a credential).
fn path_only(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn form_urlencode(fields: &[(&str, String)]) -> Vec<u8> {
    let encoded: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    encoded.join("&").into_bytes()
}

/// `application/x-www-form-urlencoded` and URL path/query encoding: everything but unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(
                r#"{"httpStatus":400,"errors":[{"code":"DUPLICATE_FIELD","description":"packageName"}]}"#
            ),
            "DUPLICATE_FIELD packageName"
        );
        assert_eq!(
            server_message("<html><body><p>Error: Duplicate name</p></body></html>"),
            "Error: Duplicate name"
        );
        assert_eq!(server_message(r#"{"detail":"still\nbusy"}"#), "still busy");
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://T.api.kandji.io/api/v1?x"),
            "https://t.api.kandji.io"
        );
        assert_ne!(
            origin("https://s3.amazonaws.com/b"),
            origin("https://t.api.kandji.io")
        );
        assert_ne!(origin("http://127.0.0.1:80/_s3"), origin("http://127.0.0.1:81"));
    }

    #[test]
    fn token_lifetimes() {
        let life = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(
            life(serde_json::json!(18446744073709551615u64)),
            MAX_TOKEN_LIFETIME
        );
        assert_eq!(life(serde_json::json!(-5)), ASSUMED_TOKEN_LIFETIME);
        assert_eq!(life(serde_json::json!("soon")), ASSUMED_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(None), ASSUMED_TOKEN_LIFETIME);
        assert_eq!(life(serde_json::json!(1800)), Duration::from_secs(1800));
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
