//! The faults a real Bot API has, on demand and reproducible: server errors (Telegram's own 500
//! and a proxy's 502 page), requests left hanging past any client's timeout, connections
//! dropped with no answer, and 429 bursts for one chat or the whole bot.
//!
//! Each chat's requests draw their faults from a sequence fixed by the seed and the chat, so
//! which chats never get through does not depend on the order requests arrive in. A faulty
//! request is answered (or not) before the fake accepts anything: a hung or dropped request
//! was never taken, and retrying it sends nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// What the fake does to some of the `sendMessage` requests it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultMix {
    /// The same seed gives every chat the same sequence of faults.
    pub seed: u64,
    /// Share of requests answered with a server error: half a 500 in the Bot API's envelope,
    /// half a 502 with a proxy's HTML page.
    pub server_errors: f64,
    /// Share of requests left unanswered for `hang`, longer than the client waits.
    pub hangs: f64,
    pub hang: Duration,
    /// Share of requests whose connection is reset with no answer at all.
    pub resets: f64,
    /// 429s for everyone now and then, as when the bot as a whole goes over its limit.
    pub bot_bursts: Option<BotBursts>,
    /// 429s for some chats on their first requests, as when one chat gets too much.
    pub chat_bursts: Option<ChatBursts>,
}

/// After every `every` `sendMessage` requests, the next `length` get 429 with `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BotBursts {
    pub every: usize,
    pub length: usize,
    pub retry_after: u32,
}

/// A `share` of the chats get 429 with `retry_after` on their first `length` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatBursts {
    pub share: f64,
    pub length: usize,
    pub retry_after: u32,
}

/// How one request is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 500 with `{"ok":false,"error_code":500,"description":"Internal Server Error"}`.
    InternalError,
    /// 502 with a proxy's HTML page.
    BadGateway,
    /// No answer until `hang` has passed (then a 504 nobody waits for).
    Hang,
    /// The connection closed with a TCP reset, no HTTP answer.
    Reset,
    /// 429 with `retry_after`.
    TooManyRequests { retry_after: u32 },
}

/// Faults the fake has answered with so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// `sendMessage` requests while a mix was set.
    pub requests: usize,
    pub server_errors: usize,
    pub hangs: usize,
    pub resets: usize,
    pub too_many_requests: usize,
}

/// A mix and where each chat is in it.
#[derive(Debug)]
pub(super) struct Plan {
    pub mix: FaultMix,
    pub counts: FaultCounts,
    /// Draws made per chat: a chat's n-th draw is the same in every run.
    draws: HashMap<i64, u64>,
    /// 429s given per chat by `chat_bursts`.
    limited: HashMap<i64, usize>,
}

impl Plan {
    pub fn new(mix: FaultMix) -> Plan {
        Plan {
            mix,
            counts: FaultCounts::default(),
            draws: HashMap::new(),
            limited: HashMap::new(),
        }
    }

    /// The fault for the next `sendMessage` to `chat`, if any, counted.
    pub fn next(&mut self, chat: i64) -> Option<Fault> {
        let n = self.counts.requests;
        self.counts.requests += 1;
        if let Some(b) = self.mix.bot_bursts
            && b.every > 0
            && n % b.every >= b.every.saturating_sub(b.length)
        {
            self.counts.too_many_requests += 1;
            return Some(Fault::TooManyRequests {
                retry_after: b.retry_after,
            });
        }
        if let Some(b) = self.mix.chat_bursts {
            let limited = self.limited.entry(chat).or_default();
            if unit(self.mix.seed, chat, u64::MAX) < b.share && *limited < b.length {
                *limited += 1;
                self.counts.too_many_requests += 1;
                return Some(Fault::TooManyRequests {
                    retry_after: b.retry_after,
                });
            }
        }
        let draw = self.draws.entry(chat).or_default();
        let fault = self.mix.drawn(chat, *draw);
        *draw += 1;
        match fault {
            Some(Fault::InternalError | Fault::BadGateway) => self.counts.server_errors += 1,
            Some(Fault::Hang) => self.counts.hangs += 1,
            Some(Fault::Reset) => self.counts.resets += 1,
            _ => {}
        }
        fault
    }
}

impl FaultMix {
    /// The `n`-th draw for `chat` (429 bursts aside, which draw nothing): a server error, a
    /// hang, a reset, or nothing.
    pub fn drawn(&self, chat: i64, n: u64) -> Option<Fault> {
        let u = unit(self.seed, chat, n);
        let server = self.server_errors;
        if u < server {
            // The lower half of the band: Telegram's own 500; the upper: the proxy's 502.
            return Some(if u < server / 2.0 {
                Fault::InternalError
            } else {
                Fault::BadGateway
            });
        }
        if u < server + self.hangs {
            return Some(Fault::Hang);
        }
        if u < server + self.hangs + self.resets {
            return Some(Fault::Reset);
        }
        None
    }

    /// Whether `chat`'s first `attempts` draws are all faults: a client giving up after that
    /// many failures never gets its message through.
    pub fn never_gets_through(&self, chat: i64, attempts: u32) -> bool {
        (0..u64::from(attempts)).all(|n| self.drawn(chat, n).is_some())
    }
}

/// A number in [0, 1) fixed by `(seed, chat, n)`: splitmix64 over the three.
fn unit(seed: u64, chat: i64, n: u64) -> f64 {
    let mut x = seed
        ^ (chat as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Handed to every request: a handler that calls [`HangUp::now`] has its connection reset
/// instead of answered.
#[derive(Clone)]
pub(super) struct HangUp(Arc<Notify>);

impl HangUp {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// Serves `app` on `listener` over HTTP/1.1, one task per connection, as `axum::serve` does,
/// except that a handler can have its connection reset. The connections end with the task
/// that serves (the fake's drop aborts it).
pub(super) async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, app.clone()));
                }
                // Out of descriptors, say: the next accept may succeed.
                Err(_) => tokio::task::yield_now().await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: tokio::net::TcpStream, app: Router) {
    let hang_up = HangUp(Arc::new(Notify::new()));
    let handed = hang_up.clone();
    let service = tower::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(handed.clone());
        app.clone().oneshot(request.map(Body::new))
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::select! {
        _ = &mut conn => {}
        () = hang_up.0.notified() => {
            // SO_LINGER 0: closing sends a reset, as a crashing proxy or a dropped NAT entry
            // does, rather than an orderly end of stream.
            let stream = conn.into_parts().io.into_inner();
            let _ = stream.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKind;
    use crate::channels::telegram::TelegramChannel;
    use crate::channels::{Channel, Outbound, SendError};
    use crate::config::TelegramConfig;
    use crate::fakes::telegram::FakeTelegram;

    fn mix() -> FaultMix {
        FaultMix {
            seed: 7,
            server_errors: 0.20,
            hangs: 0.05,
            hang: Duration::from_secs(1),
            resets: 0.02,
            bot_bursts: None,
            chat_bursts: None,
        }
    }

    #[test]
    fn the_draws_give_the_shares_asked_for_whatever_the_order() {
        let mix = mix();
        let mut plan = Plan::new(mix.clone());
        let mut seen: HashMap<Option<Fault>, usize> = HashMap::new();
        for n in 0..10 {
            for chat in 0..2_000 {
                *seen.entry(plan.next(chat)).or_default() += 1;
                assert_eq!(mix.drawn(chat, n), mix.drawn(chat, n), "reproducible");
            }
        }
        let share = |f: Fault| seen.get(&Some(f)).copied().unwrap_or(0) as f64 / 20_000.0;
        let server = share(Fault::InternalError) + share(Fault::BadGateway);
        assert!((0.19..0.21).contains(&server), "{server}");
        assert!((0.04..0.06).contains(&share(Fault::Hang)));
        assert!((0.01..0.03).contains(&share(Fault::Reset)));
        assert!(share(Fault::InternalError) > 0.08 && share(Fault::BadGateway) > 0.08);
        // A chat's sequence is its own: draws for others in between change nothing.
        let mut alone = Plan::new(mix.clone());
        let first: Vec<_> = (0..10).map(|_| alone.next(5)).collect();
        let expected: Vec<_> = (0..10).map(|n| mix.drawn(5, n)).collect();
        assert_eq!(first, expected);
    }

    #[test]
    fn bursts_refuse_the_whole_bot_then_single_chats() {
        let mut plan = Plan::new(FaultMix {
            server_errors: 0.0,
            hangs: 0.0,
            resets: 0.0,
            bot_bursts: Some(BotBursts {
                every: 10,
                length: 3,
                retry_after: 4,
            }),
            chat_bursts: Some(ChatBursts {
                share: 1.0,
                length: 2,
                retry_after: 1,
            }),
            ..mix()
        });
        let verdicts: Vec<_> = (0..10).map(|_| plan.next(1)).collect();
        let limited = |s| Some(Fault::TooManyRequests { retry_after: s });
        assert_eq!(
            verdicts,
            [
                limited(1),
                limited(1),
                None,
                None,
                None,
                None,
                None,
                limited(4),
                limited(4),
                limited(4)
            ]
        );
        assert_eq!(plan.counts.too_many_requests, 5);
    }

    /// Each fault, alone, reaches a client as the network's would: the request is never
    /// accepted, and the client sees a transport failure of the right kind.
    #[tokio::test]
    async fn each_fault_reaches_the_client_as_a_transport_failure() {
        let fake = FakeTelegram::start("42:fake-token").await.unwrap();
        let channel = TelegramChannel::new(&TelegramConfig {
            token: "42:fake-token".into(),
            api_url: fake.api_url(),
            admins: vec![],
            webhook_secret: None,
            paid_broadcast: false,
        })
        .unwrap()
        .with_timeouts(Duration::from_secs(1), Duration::from_millis(300));
        let message = Outbound {
            delivery_id: 1,
            kind: ChannelKind::Telegram,
            address: "5",
            text: "Xin chào",
        };
        let only = |server_errors, hangs, resets| FaultMix {
            server_errors,
            hangs,
            resets,
            hang: Duration::from_secs(2),
            ..mix()
        };
        for (mix, expected) in [
            (only(1.0, 0.0, 0.0), "telegram server error 50"),
            (only(0.0, 1.0, 0.0), "telegram unreachable: timed out"),
            (only(0.0, 0.0, 1.0), "telegram unreachable: "),
        ] {
            fake.inject_faults(mix);
            for _ in 0..4 {
                let result = channel.send(&message).await;
                assert!(
                    matches!(&result, Err(SendError::Unavailable(r)) if r.starts_with(expected)),
                    "{expected}: {result:?}"
                );
            }
        }
        assert_eq!(fake.accepted(), 0);
        let bursts = FaultMix {
            bot_bursts: Some(BotBursts {
                every: 1,
                length: 1,
                retry_after: 3,
            }),
            ..only(0.0, 0.0, 0.0)
        };
        fake.inject_faults(bursts);
        assert_eq!(
            channel.send(&message).await,
            Err(SendError::RateLimited {
                retry_after: Duration::from_secs(3)
            })
        );
        fake.inject_faults(only(0.0, 0.0, 0.0));
        assert!(channel.send(&message).await.is_ok());
        assert_eq!(fake.accepted(), 1);
    }
}
