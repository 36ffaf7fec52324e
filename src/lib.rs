//! Loa ("loudspeaker"): a campaign scheduler and messaging bot for public-awareness work,
//! first built for a district People's Committee's gender-equality plan.
//!
//! # Layout
//!
//! Data flows one way, left to right:
//!
//! ```text
//! schedules/*.toml ─┐
//! messages/*.hbs  ──┼─> calendar ─> scheduler ─> occurrence ─> fan-out ─> deliveries ─> dispatch ─> channel
//! loa.toml        ──┘   (rules)     (clock)      (one row)     (SQL)       (rows)        (workers)   (telegram|log)
//!                                                                                          │
//!                                                           reach <── delivery results ───┘
//! ```
//!
//! Leaves first; a module imports only from those listed before it.
//!
//! * [`diagnostics`] — `file:line: message` problems, collected across every input file.
//! * [`export`] — CSV for Excel: byte-order mark, cells from people kept from being formulas.
//! * [`config`] — `loa.toml` plus environment overrides, validated; the area tree.
//! * [`clock`] — the `Clock` trait: system time, or a virtual clock tests and demos step.
//! * [`store`] — the sqlx pool (SQLite by default, PostgreSQL by URL) and migrations.
//! * [`templates`] — handlebars over `messages/`, strict, one registry per channel.
//! * [`calendar`] — schedule files; cron in the campaign time zone, date windows. Pure.
//! * [`audience`] — persons, contacts, areas, tags; the audience filter of the fan-out.
//! * [`reach`] — one row per (period, person) reached; the per-area report.
//! * [`channels`] — the `Channel` trait and its transports: Telegram (teloxide), SMS, `log`.
//! * [`console`] — the staff console's rules: accounts, roles and area scope, the content queue
//!   and its approval, offline activities, the dashboard's figures, the audit log.
//! * [`scheduler`] — fire times (and approved queued content) → occurrence rows → delivery rows,
//!   idempotently.
//! * [`dispatch`] — claims deliveries under a lease, renders, sends, records, retries.
//! * [`web`] — axum routes: `/healthz`, `/metrics`, webhooks, the console's pages and JSON API.
//! * [`fakes`] — in-process fakes of the gateways (Telegram Bot API) for tests and demos.
//! * [`app`] — loads and cross-checks the inputs; `Application::build`, the one place that wires
//!   every part (for `loa run`, the demo and the tests); runs them until shutdown.
//! * [`cli`] — the `loa` commands and their exit codes; `main.rs` only calls it.

pub mod diagnostics;
pub mod export;
pub mod metrics;

pub mod channel;
pub mod text;

pub mod clock;
pub mod config;
pub mod store;

pub mod delivery;

pub mod calendar;
pub mod templates;

pub mod audience;
pub mod channels;
pub mod reach;

pub mod console;

pub mod dispatch;
pub mod inbound;
pub mod scheduler;

pub mod fakes;
pub mod web;

pub mod app;
pub mod bot;
pub mod cli;
pub mod demo;
pub mod perf;
