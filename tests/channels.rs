//! Channels are data: a channel added in test code only — a descriptor with a body format of
//! its own, and a transport — carries a schedule's template and queued content end to end.
//! Nothing else of Loa is told about it: the calendar, the templates, the fan-out, the claim,
//! the console and the reach figures all find it through its descriptor.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{TestApp, copy_of_repo};
use loa::channel::{
    AddressKind, BodyFormat, BodySettings, ChannelKind, ChannelLimits, ChannelSet, Descriptor,
    FormatProblem, Price,
};
use loa::channels::{Channel, Outbound, Receipt, SendError};
use loa::console::content::ContentInput;
use loa::console::dashboard::DashboardQuery;
use loa::console::{Actor, Console, Role};
use loa::dispatch::Transports;

const FAX: ChannelKind = ChannelKind::new("fax");

/// The fax's own way of writing: every inserted value in capitals (a fax is read from paper),
/// at most 300 characters.
struct FaxText;

static FAX_TEXT: FaxText = FaxText;

impl BodyFormat for FaxText {
    fn name(&self) -> &'static str {
        "fax"
    }

    fn escape(&self, value: &str) -> String {
        value.to_uppercase()
    }

    fn check(&self, text: &str, _: &BodySettings) -> Result<(), FormatProblem> {
        let characters = text.chars().count();
        if characters > 300 {
            return Err(FormatProblem::TooLong {
                characters,
                most: 300,
            });
        }
        Ok(())
    }
}

const FAX_CHANNEL: Descriptor = Descriptor {
    kind: FAX,
    label: "Fax",
    format: &FAX_TEXT,
    address: AddressKind::PhoneNumber,
    confirms_delivery: false,
    staff_text: true,
    opt_out_line: false,
    limits: ChannelLimits {
        per_second: 5,
        per_address_per_second: None,
        per_group_per_minute: None,
    },
    price: Price::PerMessage(2000.0),
    addresses_of: None,
    yearly_budget: None,
};

/// A fax machine that takes every page.
#[derive(Default)]
struct FakeFax {
    sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Channel for FakeFax {
    fn name(&self) -> &'static str {
        "fake-fax"
    }

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError> {
        assert_eq!(message.kind, FAX);
        self.sent
            .lock()
            .unwrap()
            .push((message.address.to_string(), message.text.to_string()));
        Ok(Receipt {
            provider_message_id: Some(format!("fax-{}", message.delivery_id)),
        })
    }
}

#[tokio::test]
async fn a_channel_added_in_test_code_carries_a_template_and_queued_content_end_to_end() {
    // Its templates and a schedule that uses it, beside the repository's own.
    let dir = copy_of_repo();
    std::fs::write(
        dir.path().join("messages/thong-bao.fax.hbs"),
        "Kính gửi {{person.name}} ({{area.name}}): {{observance}}.",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("schedules/99-fax.toml"),
        "[[schedule]]\nid = \"thu-fax\"\nobservance = \"quoc-te-phu-nu\"\ntemplate = \"thong-bao\"\n\
         cron = \"0 0 9 1 3 *\"\nchannels = [\"fax\"]\nsame_day_ok = true\n",
    )
    .unwrap();
    let fax = Arc::new(FakeFax::default());
    let mut app = TestApp::spawn_channels(
        &dir.path().join("loa.toml"),
        "2027-03-01T08:59:00+07:00",
        0.0,
        ChannelSet::builtin().with(FAX_CHANNEL),
        Transports::new().with(FAX, fax.clone()),
        |_| {},
    )
    .await;
    app.engine.scheduler.tick().await.unwrap();
    let now = app.clock_now();
    let hoa = loa::audience::add_person(
        &app.db,
        &app.setup.config.areas,
        "Nguyễn Thị Hoa",
        "bac-ly",
        &[],
        now,
    )
    .await
    .unwrap();
    loa::audience::add_contact(&app.db, hoa, FAX, "+84241234567", now)
        .await
        .unwrap();

    // The schedule fires: its template, rendered in the fax's format, goes by fax.
    app.set_clock("2027-03-01T09:00:00+07:00");
    let report = app.engine.scheduler.tick().await.unwrap();
    assert_eq!(report.created.len(), 1, "{report:?}");
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    assert_eq!(
        fax.sent.lock().unwrap().as_slice(),
        [(
            "+84241234567".to_string(),
            "Kính gửi NGUYỄN THỊ HOA (XÃ BẮC LÝ): NGÀY QUỐC TẾ PHỤ NỮ 8/3.".to_string()
        )]
    );

    // Queued content for the fax: previewed with its label and price, approved, sent.
    let console = Console {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        calendar: Arc::clone(&app.setup.calendar),
        clock: app.clock.clone(),
    };
    let actor = |name: &str, role| Actor {
        id: format!("user:{name}"),
        name: name.into(),
        role,
        area: None,
    };
    let mut input = ContentInput {
        title: "Mời họp".into(),
        channels: vec!["fax".into()],
        areas: vec!["bac-ly".into()],
        send_at: "2027-03-02T08:00".into(),
        ..ContentInput::default()
    };
    input.set_text(FAX, "Mời {{person.name}} dự họp.");
    let preview = console
        .preview(&actor("lan", Role::Staff), &input)
        .await
        .unwrap();
    let channel = &preview.channels[0];
    assert_eq!(
        (channel.channel_label, channel.recipients, channel.cost_vnd),
        ("Fax", 1, Some(2000.0))
    );
    assert_eq!(
        channel.text.as_deref(),
        Some("MỜI NGUYỄN THỊ LAN DỰ HỌP."),
        "staff text in the fax's format, for a sample person"
    );
    let item = console
        .create_content(&actor("lan", Role::Staff), &input)
        .await
        .unwrap();
    console
        .submit_content(&actor("lan", Role::Staff), item.id, Some(item.version))
        .await
        .unwrap();
    console
        .approve_content(&actor("binh", Role::Approver), item.id, item.version)
        .await
        .unwrap();
    app.set_clock("2027-03-02T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    assert_eq!(app.engine.dispatcher.step().await.unwrap().sent, 1);
    assert_eq!(
        fax.sent.lock().unwrap()[1].1,
        "MỜI NGUYỄN THỊ HOA DỰ HỌP.",
        "the body kept for the fax, filled in for its person"
    );

    // The dashboard counts her as reached by the fax alone.
    let dashboard = console
        .dashboard(
            &actor("lanh-dao", Role::Official),
            &DashboardQuery {
                year: Some(2027),
                ..DashboardQuery::default()
            },
        )
        .await
        .unwrap();
    let bac_ly = dashboard
        .communes
        .iter()
        .find(|l| l.code == "bac-ly")
        .unwrap();
    assert_eq!(bac_ly.reached, 1);
    assert_eq!(bac_ly.split.get("fax"), 1);
}

#[tokio::test]
async fn a_channel_the_deployment_does_not_know_is_named_where_it_is_used() {
    let dir = copy_of_repo();
    let config = dir.path().join("loa.toml");
    std::fs::write(dir.path().join("messages/thong-bao.fax.hbs"), "x").unwrap();
    std::fs::write(
        dir.path().join("schedules/99-fax.toml"),
        "[[schedule]]\nid = \"thu-fax\"\nobservance = \"quoc-te-phu-nu\"\ntemplate = \"thong-bao\"\n\
         cron = \"0 0 9 1 3 *\"\nchannels = [\"fax\"]\n",
    )
    .unwrap();
    let problems = loa::app::Setup::load(&config, &Default::default())
        .unwrap_err()
        .to_string();
    for expected in [
        "thong-bao.fax.hbs: file name must be <name>.<channel>.hbs with channel one of telegram, sms",
        "99-fax.toml:6: channels: unknown channel \"fax\" (known: telegram, zalo, sms)",
    ] {
        assert!(problems.contains(expected), "{expected:?} in:\n{problems}");
    }
    let source = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{source}\n[limits.fax]\nper_second = 1\n")).unwrap();
    let problems = loa::app::Setup::load(&config, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("limits.fax: no such channel (known: telegram, zalo, sms)"),
        "{problems}"
    );
}
