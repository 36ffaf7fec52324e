//! Loa ("loudspeaker"): a campaign scheduler and messaging bot for public-awareness work,
//! first built for a district People's Committee's gender-equality plan.
//!
//! # Layout
//!
//! Data flows one way, left to right:
//!
//! ```text
//! schedules/*.toml ─┐
//! messages/*.hbs  ──┼─> calendar ─> scheduler ─> occurrence ─> fan-out ─> deliveries ─> dispatch ─> transport
//! loa.toml        ──┘   (rules)     (clock)      (one row)     (SQL)       (rows)        (workers)   (telegram|sms|log)
//!                                                                                          │
//!                                                 reach <── delivery results & reports ───┘
//! ```
//!
//! Leaves first; a module imports only from those listed before it (`docs/ARCHITECTURE.md`
//! has the table of who imports whom and who owns which table).
//!
//! * [`diagnostics`], [`export`], [`metrics`], [`clock`], [`store`] — `file:line` problems; CSV
//!   for Excel; Prometheus counters; the `Clock`; the sqlx pool, migrations and the `Sql` builder.
//! * [`text`] — Vietnamese dates, unaccenting, SMS parts, Telegram's HTML.
//! * [`channel`] — what a channel is: kind, descriptor, body format, limits, price; the set.
//! * [`config`] — `loa.toml` plus environment overrides, validated; the area tree; the channels.
//! * [`delivery`] — a delivery's states and attempts, spelled once.
//! * [`calendar`] — schedule files; cron in the campaign time zone, date windows; public
//!   holidays (lunar dates computed) moving or skipping fire times. Pure.
//! * [`templates`] — handlebars over `messages/`, one registry per channel; staff text's fixed
//!   placeholders (never compiled).
//! * [`audience`] — persons, contacts, areas, tags; the audience of the fan-out.
//! * [`channels`] — the `Channel` trait and its transports: Telegram, Zalo (ZNS), SMS, `log`.
//! * [`reach`] — one row per (period, person) reached; the per-area report; the channel split.
//! * [`budget`] — each delivery's cost, the year's spending per channel against `[budget]`, the
//!   occurrences held over it and an admin's decision on them.
//! * [`poster`] — a commune's A4 poster: how to subscribe, with QR codes.
//! * [`console`] — the staff console's rules: accounts, roles and area scope, the content queue
//!   and its approval, offline activities, the dashboard's figures, the delivery log, the audit.
//! * [`dispatch`] — claims deliveries under a lease, renders, sends, records, decides retries.
//! * [`inbound`] — what comes back: residents' SMS replies, gateways' delivery reports.
//! * [`scheduler`] — fire times (and approved queued content) → occurrence rows → delivery rows,
//!   idempotently.
//! * [`backup`] — `loa backup`/`restore` and the daily copy: consistent while Loa runs,
//!   refused over a running database.
//! * [`fakes`] — in-process fakes of the gateways for tests and demos.
//! * [`bot`] — the residents' Telegram bot: one handler schema, long polling or webhook.
//! * [`web`] — axum routes: `/healthz`, `/metrics`, webhooks, the console's pages and JSON API.
//! * [`app`] — loads and cross-checks the inputs; `Application::build`, the one place that wires
//!   every part (for `loa run`, the demo and the tests); runs them until shutdown.
//! * [`doctor`] — `loa doctor`: every check that can be made before a campaign morning.
//! * [`demo`], [`perf`] — `loa demo`; the benchmark harness.
//! * [`cli`] — the `loa` commands and their exit codes; `main.rs` only calls it.

pub mod clock;
pub mod diagnostics;
pub mod export;
pub mod metrics;
pub mod store;

pub mod text;

pub mod channel;
pub mod config;

pub mod delivery;

pub mod calendar;
pub mod templates;

pub mod audience;
pub mod budget;
pub mod channels;
pub mod poster;
pub mod reach;

pub mod console;

pub mod dispatch;
pub mod inbound;
pub mod privacy;
pub mod scheduler;

pub mod backup;

pub mod bot;
pub mod fakes;
pub mod web;

pub mod app;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod perf;
