//! A fake of Kannel's `sendsms` HTTP interface: records each message with its coding and
//! `dlr-url`, answers as Kannel does (`202 0: Accepted for delivery`), can be told to answer
//! 503 or 403 (once, or all the time while its SMS centre link is down), and plays delivery reports back to the `dlr-url` when a test asks.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq)]
pub struct SentSms {
    pub from: String,
    pub to: String,
    pub text: String,
    pub coding: String,
    pub dlr_url: Option<String>,
}

#[derive(Default)]
struct State_ {
    sent: Vec<SentSms>,
    answers: VecDeque<(u16, String)>,
    /// Messages whose delivery report has been played (or decided never to come).
    settled: usize,
    /// Kannel up but its SMS centre link down: every request answers 503.
    down: bool,
    /// Requests answered, whatever the answer.
    requests: usize,
}

pub struct FakeKannel {
    addr: SocketAddr,
    state: Arc<Mutex<State_>>,
    server: JoinHandle<()>,
}

impl FakeKannel {
    pub async fn start() -> std::io::Result<FakeKannel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State_::default()));
        let app = Router::new()
            .route("/cgi-bin/sendsms", get(sendsms))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeKannel {
            addr,
            state,
            server,
        })
    }

    /// The URL to give Loa as `LOA_KANNEL_URL`.
    pub fn sendsms_url(&self) -> String {
        format!("http://{}/cgi-bin/sendsms", self.addr)
    }

    pub fn sent(&self) -> Vec<SentSms> {
        self.state.lock().expect("fake kannel").sent.clone()
    }

    /// The next request gets this answer instead of `202 0: Accepted for delivery`.
    pub fn answer_next(&self, status: u16, body: &str) {
        self.state
            .lock()
            .expect("fake kannel")
            .answers
            .push_back((status, body.to_string()));
    }

    /// Takes the SMS centre link down (every request answers Kannel's 503 "Temporal failure")
    /// or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("fake kannel").down = down;
    }

    /// Requests answered so far, accepted or not.
    pub fn requests(&self) -> usize {
        self.state.lock().expect("fake kannel").requests
    }

    /// Calls every recorded `dlr-url` with DLR type `dlr` (1 delivered, 2 failed, 4 buffered,
    /// 8 submitted); returns the HTTP statuses Loa answered.
    pub async fn report_all(&self, dlr: u32) -> Vec<u16> {
        let urls: Vec<String> = self.sent().into_iter().filter_map(|m| m.dlr_url).collect();
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        for url in urls {
            let url = url.replace("%d", &dlr.to_string());
            let status = client
                .get(&url)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            statuses.push(status);
        }
        statuses
    }
}

impl FakeKannel {
    /// Plays one delivery report for each message not settled yet, as `decide` says (`None`:
    /// the report never comes). Returns how many reports were sent.
    pub async fn settle_reports(&self, decide: impl Fn(&SentSms) -> Option<u32>) -> usize {
        let pending: Vec<SentSms> = {
            let mut state = self.state.lock().expect("fake kannel");
            let pending = state.sent[state.settled..].to_vec();
            state.settled = state.sent.len();
            pending
        };
        let client = reqwest::Client::new();
        let mut sent = 0;
        for sms in pending {
            let (Some(url), Some(dlr)) = (&sms.dlr_url, decide(&sms)) else {
                continue;
            };
            if client
                .get(url.replace("%d", &dlr.to_string()))
                .send()
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    }
}

impl Drop for FakeKannel {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn sendsms(
    State(state): State<Arc<Mutex<State_>>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let mut state = state.lock().expect("fake kannel");
    state.requests += 1;
    if state.down {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporal failure, try again later.".into(),
        );
    }
    if let Some((status, body)) = state.answers.pop_front() {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        );
    }
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("to").is_empty() || get("text").is_empty() {
        return (StatusCode::BAD_REQUEST, "Missing receiver or text".into());
    }
    state.sent.push(SentSms {
        from: get("from"),
        to: get("to"),
        text: get("text"),
        coding: get("coding"),
        dlr_url: q.get("dlr-url").cloned(),
    });
    (StatusCode::ACCEPTED, "0: Accepted for delivery".into())
}
