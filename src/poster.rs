//! A commune's poster: a print-ready A4 page that tells residents how to subscribe — the
//! Telegram bot's link with the commune chosen (`t.me/<bot>?start=<area>`), the Zalo OA's link
//! when there is one, and the SMS keyword (`DK <commune>` to the reply number) — each link also
//! as a QR code drawn inline (SVG, no script, nothing fetched), for the commune hall, schools
//! and the health station. `loa poster AREA` writes it; the console serves it at
//! `/posters/<area>`. Whoever subscribes through the Telegram link is counted as a poster
//! subscription (`ConsentSource::Poster`).

use qrcode::QrCode;
use qrcode::render::svg;

use crate::config::{Area, AreaKind, Config, Serves};
use crate::text::telegram_html::escape as esc;
use crate::text::unaccent;

/// The ways to subscribe a poster shows, for one commune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosterLinks {
    /// `https://t.me/<bot>?start=<area>`, when the bot's username is configured.
    pub telegram: Option<String>,
    /// The Zalo OA's page, when configured.
    pub zalo: Option<String>,
    /// The SMS to send: (`DK DOAN BAI`, the reply number), when residents can text Loa.
    pub sms: Option<(String, String)>,
}

impl PosterLinks {
    pub fn for_area(config: &Config, area: &Area) -> PosterLinks {
        PosterLinks {
            telegram: config
                .telegram_username
                .as_deref()
                .map(|bot| format!("https://t.me/{bot}?start={}", area.code)),
            zalo: config.zalo_oa_link.clone(),
            sms: config.sms.reply_number.as_ref().map(|number| {
                (
                    format!("DK {}", unaccent(bare_name(area)).to_uppercase()),
                    number.clone(),
                )
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.telegram.is_none() && self.zalo.is_none() && self.sms.is_none()
    }
}

/// "Đoan Bái" of "Xã Đoan Bái": what residents type after DK.
fn bare_name(area: &Area) -> &str {
    AreaKind::split(&area.name).map_or(area.name.as_str(), |(_, bare)| bare)
}

/// `link` as a QR code: an `<svg>` element to put inline.
pub fn qr_svg(link: &str) -> String {
    let code = QrCode::new(link.as_bytes()).expect("a link fits a QR code");
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // The renderer writes a whole document: only its `<svg>` goes inline.
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    }
}

/// The poster of `area` as a whole HTML document (A4, portrait), in Vietnamese.
pub fn render(config: &Config, area: &Area, year: i32) -> String {
    let links = PosterLinks::for_area(config, area);
    let sender = esc(&config.campaign.sender);
    let place = esc(&area.in_sentence);
    let mut ways = String::new();
    if let Some(link) = &links.telegram {
        ways.push_str(&format!(
            "<section class=\"way\"><h2>Telegram</h2>{qr}<p>Quét mã bằng điện thoại, mở Telegram và \
             bấm <b>Đồng ý nhận tin</b>.</p><p class=\"link\">{link}</p></section>",
            qr = qr_svg(link),
            link = esc(link)
        ));
    }
    if let Some(link) = &links.zalo {
        ways.push_str(&format!(
            "<section class=\"way\"><h2>Zalo</h2>{qr}<p>Quét mã bằng Zalo và bấm <b>Quan tâm</b> \
             trang của {sender}.</p><p class=\"link\">{link}</p></section>",
            qr = qr_svg(link),
            link = esc(link)
        ));
    }
    if let Some((keyword, number)) = &links.sms {
        ways.push_str(&format!(
            "<section class=\"way sms\"><h2>Tin nhắn SMS</h2><p>Soạn tin</p>\
             <p class=\"keyword\">{keyword}</p><p>gửi <b class=\"number\">{number}</b></p>\
             <p>(cước tin nhắn thông thường)</p></section>",
            keyword = esc(keyword),
            number = esc(number)
        ));
    }
    let stop = match &links.sms {
        Some((_, number)) => format!(
            "Muốn dừng nhận tin: gửi /stop trên Telegram, hoặc soạn <b>TC</b> gửi <b>{}</b>.",
            esc(number)
        ),
        None => "Muốn dừng nhận tin: gửi /stop trên Telegram.".to_string(),
    };
    let emergency: Vec<String> = config
        .support
        .lines(Serves::Emergency)
        .chain(config.support.lines(Serves::Children))
        .map(|h| format!("{} <b>{}</b>", esc(&h.label), esc(&h.number)))
        .collect();
    let help = if emergency.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"help\">Khi bị bạo lực hoặc biết người bị bạo lực, hãy báo ngay: {}.</p>",
            emergency.join(" · ")
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"vi\"><head><meta charset=\"utf-8\">\
         <title>Đăng ký nhận tin – {name}</title><style>{STYLE}</style></head><body><main>\
         <header><p class=\"from\">{sender}</p><h1>NHẬN TIN VỀ BÌNH ĐẲNG GIỚI</h1>\
         <p class=\"lead\">Miễn phí trên Telegram và Zalo: thông tin về bình đẳng giới, phòng, chống \
         bạo lực gia đình và nơi hỗ trợ khi cần giúp đỡ, dành cho người dân {place}.</p></header>\
         <div class=\"ways\">{ways}</div><footer><p>{stop}</p>{help}\
         <p class=\"year\">{campaign}</p></footer></main></body></html>\n",
        name = esc(&area.name),
        campaign = esc(&config.campaign.name_in(year)),
    )
}

const STYLE: &str = "@page{size:A4 portrait;margin:14mm}\
*{box-sizing:border-box}body{margin:0;font-family:'Noto Sans','DejaVu Sans',Arial,sans-serif;color:#111}\
main{max-width:182mm;margin:0 auto}header{text-align:center;border-bottom:3px solid #b71c1c;padding-bottom:6mm}\
.from{font-size:15pt;font-weight:bold;text-transform:uppercase;margin:0}\
h1{font-size:30pt;color:#b71c1c;margin:4mm 0}.lead{font-size:14pt;line-height:1.4;margin:0}\
.ways{display:flex;flex-wrap:wrap;gap:6mm;justify-content:center;margin:8mm 0}\
.way{flex:1 1 55mm;border:2px solid #333;border-radius:4mm;padding:4mm;text-align:center;break-inside:avoid}\
.way h2{font-size:18pt;margin:0 0 3mm}.way svg{width:50mm;height:50mm}\
.way p{font-size:12pt;margin:2mm 0}.link{font-size:9pt;word-break:break-all;color:#333}\
.keyword{font-size:20pt;font-weight:bold;letter-spacing:1px}.number{font-size:18pt}\
footer{border-top:1px solid #999;padding-top:4mm;font-size:12pt;line-height:1.4}\
.help{font-weight:bold}.year{font-size:9pt;color:#555}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qr_code_is_an_inline_svg_element() {
        let svg = qr_svg("https://t.me/loa_bot?start=doan-bai");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }
}
