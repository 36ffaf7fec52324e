//! `[budget]`: what the district may spend on each channel in a year, in đồng.
//!
//! ```toml
//! [budget]
//! sms = 12_000_000
//! zalo = 6_000_000
//! ```
//!
//! A channel without an entry has no limit. The figures land on the channels' descriptors
//! (`Descriptor::yearly_budget`), beside their prices.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use crate::channel::ChannelSet;
use crate::diagnostics::{Problem, Problems, line_of_offset};

/// `[budget]` as written: channel name → đồng a year.
pub(super) type RawBudget = BTreeMap<String, Spanned<f64>>;

/// Applies `[budget]` to `channels`; an unknown channel or a budget below zero is a problem
/// named with its line.
pub(super) fn apply(
    path: &Path,
    source: &str,
    raw: &RawBudget,
    channels: &mut ChannelSet,
    problems: &mut Problems,
) {
    let known = channels.names();
    for (name, value) in raw {
        let line = Some(line_of_offset(source, value.span().start));
        let Some(descriptor) = channels.parse(name).and_then(|k| channels.get_mut(k)) else {
            problems.push(Problem::new(
                path,
                line,
                format!("budget.{name}: no such channel (known: {known})"),
            ));
            continue;
        };
        let amount = *value.get_ref();
        if !amount.is_finite() || amount < 0.0 {
            problems.push(Problem::new(
                path,
                line,
                format!("budget.{name}: a yearly amount in đồng, 0 or more"),
            ));
            continue;
        }
        descriptor.yearly_budget = Some(amount);
    }
}
