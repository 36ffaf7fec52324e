//! What keeps the web side standing under abuse, and a browser from being turned against its
//! user: the server's connection handling (a header-read timeout against slow clients), limits
//! per route (body size, time), a cap on requests in flight, the security headers of every
//! answer, the client's address (behind a trusted proxy), and the sign-in throttle.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use tower::ServiceExt;

/// Scripts only from Loa itself, no inline script or event handler, nothing from elsewhere;
/// inline styles stay (the pages' stylesheet and the SVG bars use them). No framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the security headers to every answer.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// How long a client may take to send a request's headers: a slow client holding connections
/// open (slowloris) is cut off.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests being answered at once; beyond it, 503 at once rather than a queue that grows.
pub const MAX_CONCURRENT_REQUESTS: usize = 128;

/// The body and time one kind of route may take.
#[derive(Debug, Clone, Copy)]
pub struct RouteLimits {
    pub body_bytes: usize,
    pub timeout: Duration,
}

impl RouteLimits {
    /// Forms and JSON of the console: the longest is content with a 4,096-character text.
    pub const FORMS: RouteLimits = RouteLimits {
        body_bytes: 64 * 1024,
        timeout: Duration::from_secs(30),
    };
    /// Exports of a year of figures or deliveries, and spreadsheet uploads.
    pub const EXPORTS: RouteLimits = RouteLimits {
        body_bytes: 16 * 1024 * 1024,
        timeout: Duration::from_secs(600),
    };
    /// Gateways' callbacks: a few parameters.
    pub const CALLBACKS: RouteLimits = RouteLimits {
        body_bytes: 16 * 1024,
        timeout: Duration::from_secs(30),
    };
    /// Telegram's webhook: an update can carry a long message and its entities.
    pub const TELEGRAM: RouteLimits = RouteLimits {
        body_bytes: 1024 * 1024,
        timeout: Duration::from_secs(30),
    };

    /// `router` with these limits on each of its routes.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(DefaultBodyLimit::max(self.body_bytes)).layer(
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                self.timeout,
            ),
        )
    }
}

/// `router` answering at most `max` requests at once; the others get 503 with `Retry-After`.
pub fn capped(router: Router, max: usize) -> Router {
    router.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    "busy; try again in a moment\n",
                )
            }))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(max)),
    )
}

/// Requests one client may have in flight at once: a slow or greedy client (bodies that never
/// finish arriving, a flood from one address) holds at most this many of the server's places.
pub const MAX_REQUESTS_PER_CLIENT: usize = 32;

/// `router` answering each client (by [`client_address`]) at most `max` requests at once; the
/// others get 503 with `Retry-After`. Outside the overall cap, so a refused request takes no
/// place there.
pub fn per_client(router: Router, trusted: Vec<IpNet>, max: usize) -> Router {
    let slots = ClientSlots {
        in_flight: std::sync::Arc::new(Mutex::new(HashMap::new())),
        trusted: std::sync::Arc::new(trusted),
        max,
    };
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let slots = slots.clone();
            async move { slots.answer(request, next).await }
        },
    ))
}

#[derive(Clone)]
struct ClientSlots {
    in_flight: std::sync::Arc<Mutex<HashMap<IpAddr, usize>>>,
    trusted: std::sync::Arc<Vec<IpNet>>,
    max: usize,
}

/// A client's place, given back when the answer is done.
struct Slot {
    in_flight: std::sync::Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().expect("client slots lock");
        if let Some(n) = in_flight.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.client);
            }
        }
    }
}

impl ClientSlots {
    async fn answer(
        &self,
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> Response {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let forwarded = forwarded_for(request.headers());
        let Some(client) = client_address(peer, forwarded.as_deref(), &self.trusted) else {
            return next.run(request).await;
        };
        let slot = {
            let mut in_flight = self.in_flight.lock().expect("client slots lock");
            let n = in_flight.entry(client).or_default();
            if *n >= self.max {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    "too many requests at once from one client; try again in a moment\n",
                )
                    .into_response();
            }
            *n += 1;
            Slot {
                in_flight: std::sync::Arc::clone(&self.in_flight),
                client,
            }
        };
        let response = next.run(request).await;
        drop(slot);
        response
    }
}

/// Every `X-Forwarded-For` line of a request, in order, as one chain: a proxy may add its own
/// line after one the client wrote.
pub fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the requests in flight end.
/// Each connection must send its request headers within `header_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine. Pause so a flood does not spin.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service =
            app.clone()
                .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    // Requests in flight get a while to finish; a client that keeps its connection open does
    // not hold up the shutdown.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// The client's address: the connection's peer, or — when the peer is a trusted reverse proxy —
/// the last address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(
    peer: Option<SocketAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    // Each proxy appends the address it received from: read from the right, skipping our own.
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// The connection's peer, when the server recorded it.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Failed sign-ins allowed per name and per client address within [`THROTTLE_WINDOW`].
pub const MAX_FAILED_SIGN_INS: usize = 10;
pub const THROTTLE_WINDOW: chrono::Duration = chrono::Duration::minutes(10);
/// Keys kept at most: past it the oldest are forgotten, so a flood of invented names cannot
/// grow the table without bound.
const MAX_THROTTLE_KEYS: usize = 100_000;

/// Failed sign-ins per account name and per client address, on Loa's clock. After
/// [`MAX_FAILED_SIGN_INS`] failures within [`THROTTLE_WINDOW`] for either key, further attempts
/// are refused without checking the password until the oldest failure leaves the window.
///
/// A lockout counts failures in a sliding window, which a token bucket (governor) does not: it
/// would let an eleventh guess through a minute later.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl SignInThrottle {
    fn keys(name: &str, client: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("name:{}", name.trim().to_lowercase())];
        if let Some(ip) = client {
            keys.push(format!("addr:{ip}"));
        }
        keys
    }

    /// Takes a sign-in attempt for `name` from `client`, counted as a failure until
    /// [`SignInThrottle::succeeded`] says otherwise; `Err(wait)` when this name or address has
    /// failed too often: refuse without checking the password, and say when to try again.
    /// Counting before the (slow) check means guesses sent at once cannot all slip in.
    pub fn attempt(
        &self,
        name: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), chrono::Duration> {
        let mut failures = self.failures.lock().expect("throttle lock");
        let keys = Self::keys(name, client);
        let wait = keys
            .iter()
            .filter_map(|key| {
                let times = failures.get_mut(key)?;
                while times.front().is_some_and(|t| *t <= now - THROTTLE_WINDOW) {
                    times.pop_front();
                }
                (times.len() >= MAX_FAILED_SIGN_INS)
                    .then(|| *times.front().expect("full") + THROTTLE_WINDOW - now)
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if failures.len() >= MAX_THROTTLE_KEYS {
            Self::prune(&mut failures, now);
        }
        for key in keys {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            // Only the last few matter to the decision.
            while times.len() > MAX_FAILED_SIGN_INS {
                times.pop_front();
            }
        }
        Ok(())
    }

    fn prune(failures: &mut HashMap<String, VecDeque<DateTime<Utc>>>, now: DateTime<Utc>) {
        failures.retain(|_, times| times.back().is_some_and(|t| *t > now - THROTTLE_WINDOW));
        if failures.len() >= MAX_THROTTLE_KEYS {
            // Still full of live keys: forget the half that failed longest ago.
            let mut last: Vec<DateTime<Utc>> = failures
                .values()
                .filter_map(|t| t.back().copied())
                .collect();
            last.sort_unstable();
            let cut = last[last.len() / 2];
            failures.retain(|_, times| times.back().is_some_and(|t| *t > cut));
        }
    }

    /// The attempt taken at `at` had the right password: the name's failures are cleared, and
    /// the address's count loses that attempt (not the others: one known account must not
    /// reset the count of an address guessing others).
    pub fn succeeded(&self, name: &str, client: Option<IpAddr>, at: DateTime<Utc>) {
        let mut failures = self.failures.lock().expect("throttle lock");
        failures.remove(&format!("name:{}", name.trim().to_lowercase()));
        if let Some(ip) = client
            && let Some(times) = failures.get_mut(&format!("addr:{ip}"))
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }

    /// Names and addresses tracked, for tests of the bound.
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("throttle lock").len()
    }
}

/// A 429 answer's `Retry-After`, in whole seconds (at least one).
pub fn retry_after(wait: chrono::Duration) -> (header::HeaderName, String) {
    (header::RETRY_AFTER, wait.num_seconds().max(1).to_string())
}

/// A response answering 429 with its `Retry-After`.
pub fn too_many(wait: chrono::Duration, body: impl IntoResponse) -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [retry_after(wait)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn ten_attempts_in_ten_minutes_lock_out_until_the_first_leaves_the_window() {
        let throttle = SignInThrottle::default();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for i in 0..10 {
            assert_eq!(throttle.attempt("lan", Some(ip), t(i * 30)), Ok(()));
        }
        // Another name from the same address is refused as well; the same name from elsewhere too.
        let wait = throttle.attempt("binh", Some(ip), t(300)).unwrap_err();
        assert_eq!(wait, chrono::Duration::seconds(300));
        assert!(throttle.attempt("LAN ", None, t(300)).is_err());
        assert_eq!(throttle.attempt("binh", None, t(300)), Ok(()));
        // Ten minutes after the first failure, one more attempt is allowed.
        assert_eq!(throttle.attempt("lan", Some(ip), t(600)), Ok(()));
    }

    #[test]
    fn a_success_gives_back_its_attempt_and_clears_the_name_only() {
        let throttle = SignInThrottle::default();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for i in 0..9 {
            throttle.attempt(&format!("u{i}"), Some(ip), t(i)).unwrap();
        }
        // Signing in right many times from the office does not lock it out.
        for i in 10..30 {
            throttle.attempt("lan", Some(ip), t(i)).unwrap();
            throttle.succeeded("lan", Some(ip), t(i));
        }
        throttle.attempt("someone", Some(ip), t(40)).unwrap();
        assert!(throttle.attempt("someone-else", Some(ip), t(41)).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = SignInThrottle::default();
        for i in 0..(MAX_THROTTLE_KEYS as i64 + 10) {
            let _ = throttle.attempt(&format!("name{i}"), None, t(i / 1000));
        }
        assert!(throttle.tracked() <= MAX_THROTTLE_KEYS);
        // Long after, a new attempt sweeps the expired ones.
        for i in 0..MAX_THROTTLE_KEYS as i64 {
            let _ = throttle.attempt(&format!("late{i}"), None, t(100_000));
        }
        assert!(throttle.tracked() <= MAX_THROTTLE_KEYS);
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let xff = "1.2.3.4, 203.0.113.5, 10.1.1.1";
        assert_eq!(
            client_address(Some(proxy), Some(xff), &trusted),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(stranger), Some(xff), &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(proxy), None, &trusted),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(proxy), Some("garbage"), &trusted),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
