//! `[zalo]` and the `LOA_ZALO_*` environment: the Zalo Official Account's app, its tokens and
//! the webhook secret. Setting `LOA_ZALO_APP_ID` (or `zalo.app_id`) turns the channel on;
//! secrets come from the environment only.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::Env;
use crate::channel::{ChannelKind, ChannelSet, Price};
use crate::diagnostics::{Problem, Problems, line_of_offset};

pub const DEFAULT_ZALO_API_URL: &str = "https://business.openapi.zalo.me";
pub const DEFAULT_ZALO_OAUTH_URL: &str = "https://oauth.zaloapp.com";

/// The Zalo channel's credentials and endpoints.
#[derive(Clone)]
pub struct ZaloConfig {
    pub app_id: String,
    /// The app's secret key (`LOA_ZALO_SECRET_KEY`): sent when refreshing the token.
    pub secret_key: String,
    /// The first refresh token (`LOA_ZALO_REFRESH_TOKEN`); later ones live in the database.
    pub refresh_token: String,
    /// The OA's secret key (`LOA_ZALO_OA_SECRET`): checks the webhook's signatures.
    pub oa_secret: String,
    pub api_url: String,
    pub oauth_url: String,
}

impl std::fmt::Debug for ZaloConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZaloConfig")
            .field("app_id", &self.app_id)
            .field("api_url", &self.api_url)
            .field("oauth_url", &self.oauth_url)
            .finish_non_exhaustive()
    }
}

/// `[zalo]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZalo {
    app_id: Option<String>,
    api_url: Option<Spanned<String>>,
    oauth_url: Option<Spanned<String>>,
    price_per_message: Option<Spanned<f64>>,
    staff_template: Option<String>,
    /// The OA's page, `https://zalo.me/<OA id>`: posters show it as a QR code.
    oa_link: Option<Spanned<String>>,
}

/// `[zalo]` read: the credentials when the channel is on, and the staff template either way
/// (templates are checked whether or not Zalo is on).
pub(super) struct Parsed {
    pub config: Option<ZaloConfig>,
    pub staff_template: Option<String>,
    pub oa_link: Option<String>,
}

/// The Zalo configuration (`None`: the channel sends to the log), with the channel's price
/// and whether staff may write for it applied to `channels`.
pub(super) fn parse(
    path: &Path,
    source: &str,
    env: &Env,
    raw: RawZalo,
    channels: &mut ChannelSet,
    problems: &mut Problems,
) -> Parsed {
    let staff_template = raw
        .staff_template
        .as_ref()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let oa_link = match &raw.oa_link {
        Some(link) if link.get_ref().starts_with("https://zalo.me/") => {
            Some(link.get_ref().clone())
        }
        Some(link) => {
            problems.push(Problem::new(
                path,
                Some(line_of_offset(source, link.span().start)),
                format!(
                    "zalo.oa_link: {:?} is not an OA page like https://zalo.me/1234567890123456789",
                    link.get_ref()
                ),
            ));
            None
        }
        None => None,
    };
    let config = credentials(
        path,
        source,
        env,
        raw,
        channels,
        staff_template.is_some(),
        problems,
    );
    Parsed {
        config,
        staff_template,
        oa_link,
    }
}

fn credentials(
    path: &Path,
    source: &str,
    env: &Env,
    raw: RawZalo,
    channels: &mut ChannelSet,
    staff_text: bool,
    problems: &mut Problems,
) -> Option<ZaloConfig> {
    let at = |offset: usize| Some(line_of_offset(source, offset));
    let zalo = channels.get_mut(ChannelKind::Zalo)?;
    if let Some(price) = &raw.price_per_message {
        if *price.get_ref() < 0.0 || !price.get_ref().is_finite() {
            problems.push(Problem::new(
                path,
                at(price.span().start),
                "zalo.price_per_message: a price in đồng, 0 or more",
            ));
        } else {
            zalo.price = Price::PerMessage(*price.get_ref());
        }
    }
    zalo.staff_text = staff_text;
    let app_id = env
        .get("LOA_ZALO_APP_ID")
        .map(str::to_string)
        .or(raw.app_id)
        .filter(|s| !s.trim().is_empty())?;
    let url = |key: &str, given: Option<Spanned<String>>, default: &str| {
        let line = given.as_ref().and_then(|g| at(g.span().start));
        let value = env
            .get(key)
            .map(str::to_string)
            .or(given.map(Spanned::into_inner))
            .unwrap_or_else(|| default.to_string());
        (value, line)
    };
    let mut checked_url = |key: &str, name: &str, given, default| {
        let (value, line) = url(key, given, default);
        if !(value.starts_with("http://") || value.starts_with("https://"))
            || reqwest::Url::parse(&value).is_err()
        {
            problems.push(Problem::new(
                path,
                line,
                format!("zalo.{name} (or {key}): {value:?} is not an http(s) URL"),
            ));
        }
        value.trim_end_matches('/').to_string()
    };
    let api_url = checked_url(
        "LOA_ZALO_API_URL",
        "api_url",
        raw.api_url,
        DEFAULT_ZALO_API_URL,
    );
    let oauth_url = checked_url(
        "LOA_ZALO_OAUTH_URL",
        "oauth_url",
        raw.oauth_url,
        DEFAULT_ZALO_OAUTH_URL,
    );
    let mut secret = |key: &str, what: &str| match env.get(key) {
        Some(value) => value.trim().to_string(),
        None => {
            problems.push(Problem::new(
                path,
                None,
                format!("{key}: {what} is needed when LOA_ZALO_APP_ID turns Zalo on"),
            ));
            String::new()
        }
    };
    let secret_key = secret("LOA_ZALO_SECRET_KEY", "the Zalo app's secret key");
    let refresh_token = secret(
        "LOA_ZALO_REFRESH_TOKEN",
        "the OA's first refresh token (from the Zalo app's console)",
    );
    let oa_secret = secret(
        "LOA_ZALO_OA_SECRET",
        "the OA secret key that signs Zalo's delivery webhook",
    );
    Some(ZaloConfig {
        app_id,
        secret_key,
        refresh_token,
        oa_secret,
        api_url,
        oauth_url,
    })
}
