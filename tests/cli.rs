//! The `loa` binary as an operator uses it: `plan`, `check`, `run`, `report reach`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::{TestApp, at, copy_of_repo, repo_root};
use loa::config::{ChannelKind, Env};
use loa::console::accounts::{self, TokenState};
use loa::console::{Role, audit};
use sha2::Digest;
use sqlx::Row;

fn loa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(args)
        .current_dir(dir)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run loa")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The configuration and database `loa` used when it ran in `dir` (its `data/loa.db`).
async fn database_of(dir: &Path) -> (loa::app::Setup, loa::store::Db) {
    let env = Env::default().with(
        "LOA_DATABASE_URL",
        format!("sqlite://{}/data/loa.db", dir.display()),
    );
    let setup = loa::app::Setup::load(&dir.join("loa.toml"), &env).unwrap();
    let db = setup.open_database().await.unwrap();
    (setup, db)
}

#[test]
fn plan_json_lists_2023_fire_times_with_the_campaign_offset() {
    let out = loa(
        &repo_root(),
        &[
            "plan",
            "--from",
            "2023-01-01",
            "--to",
            "2023-12-31",
            "--format",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!plan.is_empty());
    for fire in &plan {
        let at = fire["at"].as_str().unwrap();
        assert!(at.starts_with("2023-") && at.ends_with("+07:00"), "{at}");
        assert!(fire["schedule"].is_string() && fire["template"].is_string());
        assert!(!fire["channels"].as_array().unwrap().is_empty());
    }
    let times: Vec<&str> = plan.iter().map(|f| f["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    let iwd: Vec<_> = plan
        .iter()
        .filter(|f| f["schedule"] == "quoc-te-phu-nu-8-3")
        .collect();
    assert_eq!(iwd.len(), 1);
    assert_eq!(iwd[0]["at"], "2023-03-08T08:00:00+07:00");
    assert_eq!(iwd[0]["template"], "quoc-te-phu-nu");
    assert_eq!(
        iwd[0]["channels"],
        serde_json::json!(["telegram", "zalo", "sms"])
    );
}

#[test]
fn the_2024_plan_has_no_fire_time_on_a_holiday_and_shows_the_tet_move() {
    let args = |format: &'static str| {
        [
            "plan",
            "--from",
            "2024-01-01",
            "--to",
            "2024-12-31",
            "--format",
            format,
        ]
    };
    let out = loa(&repo_root(), &args("json"));
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let setup = loa::app::Setup::load(&repo_root().join("loa.toml"), &Env::default()).unwrap();
    let holidays = setup.calendar.holidays();
    let mut moved = Vec::new();
    for fire in &plan {
        let at = fire["at"].as_str().unwrap();
        let day = NaiveDate::parse_from_str(&at[..10], "%Y-%m-%d").unwrap();
        assert_eq!(
            fire["status"]
                .as_str()
                .map(|s| s == "skipped" || s == "merged"),
            Some(false),
            "{fire}"
        );
        assert_eq!(holidays.on(day), None, "{at} is a holiday");
        if fire["status"] == "moved" {
            moved.push((
                at,
                fire["moved_from"].as_str().unwrap(),
                fire["holiday"].as_str().unwrap(),
            ));
        }
    }
    // The announced break ran from Thursday 8 to Wednesday 14 February.
    assert_eq!(
        moved,
        [(
            "2024-02-15T09:00:00+07:00",
            "2024-02-10T09:00:00+07:00",
            "Tết Nguyên Đán"
        )]
    );

    let out = loa(&repo_root(), &args("table"));
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let line = table
        .lines()
        .find(|l| l.starts_with("2024-02-15T09:00:00+07:00"))
        .unwrap_or_else(|| panic!("no line for 15 February:\n{table}"));
    assert!(
        line.contains("phap-luat-02-chien-luoc")
            && line.ends_with("moved from 2024-02-10 (Tết Nguyên Đán)"),
        "{line}"
    );
    assert!(!table.contains("2024-02-10T"), "{table}");
    assert!(
        table
            .trim_end()
            .ends_with("public holidays moved 1 to the next working day and stopped 0"),
        "{table}"
    );
}

#[test]
fn check_warns_of_a_template_sent_more_than_three_times_a_year() {
    // The shipped series sends each template once a year.
    let out = loa(&repo_root(), &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("is sent"), "{}", stdout(&out));

    // As it was: one template on the 10th of seven months, and again in the action month.
    let dir = copy_of_repo();
    let series = dir
        .path()
        .join("schedules/quy-i-iv-chinh-sach-phap-luat.toml");
    std::fs::write(
        &series,
        "# The monthly message, one template for all.\n\n\
         [[schedule]]\nid = \"chinh-sach-phap-luat-hang-thang\"\nobservance = \"truyen-thong-thuong-xuyen\"\n\
         template = \"phap-luat-01-binh-dang-gioi\"\ncron = \"0 0 9 10 1,2,4,5,7,8,9 *\"\n\
         channels = [\"telegram\", \"sms\"]\n",
    )
    .unwrap();
    let month = dir.path().join("schedules/11-15-thang-binh-dang-gioi.toml");
    let text = std::fs::read_to_string(&month).unwrap();
    let again = text.replace(
        "template = \"bdg-chuong-trinh-bao-luc-gioi\"",
        "template = \"phap-luat-01-binh-dang-gioi\"",
    );
    assert_ne!(again, text);
    std::fs::write(&month, again).unwrap();

    let out = loa(dir.path(), &["check"]);
    // A warning, not a problem: Loa still starts.
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    let warnings: Vec<&str> = report.lines().filter(|l| l.contains(" is sent ")).collect();
    assert_eq!(warnings.len(), 1, "{report}");
    // At the template line of the schedule that sends it most.
    assert!(
        warnings[0].starts_with("schedules/quy-i-iv-chinh-sach-phap-luat.toml:6: warning: template \"phap-luat-01-binh-dang-gioi\" is sent 8 times in "),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("by \"chinh-sach-phap-luat-hang-thang\", \"bdg-tuan-3-phap-luat\""),
        "{}",
        warnings[0]
    );
    // This year's and next year's plan are counted.
    let this_year: i32 = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%Y")
        .to_string()
        .parse()
        .unwrap();
    for year in [this_year, this_year + 1] {
        assert!(
            warnings[0].contains(&format!("8 times in {year}")),
            "{}",
            warnings[0]
        );
    }
}

#[test]
fn a_schedule_on_tet_passes_check_and_the_plan_shows_it_moved_or_skipped() {
    let dir = copy_of_repo();
    // Two messages on Tết 2025 (29 January; the announced break is 25 January – 2 February):
    // one moves to Monday 3 February, one is skipped.
    std::fs::write(
        dir.path().join("schedules/tet.toml"),
        "[[schedule]]\nid = \"tet-move\"\nobservance = \"truyen-thong-thuong-xuyen\"\ntemplate = \"phap-luat-01-binh-dang-gioi\"\ncron = \"0 0 8 29 1 *\"\nonly_year = 2025\nchannels = [\"telegram\"]\n\n\
         [[schedule]]\nid = \"tet-skip\"\nobservance = \"truyen-thong-thuong-xuyen\"\ntemplate = \"phap-luat-01-binh-dang-gioi\"\ncron = \"0 0 8 30 1 *\"\nonly_year = 2025\non_holiday = \"skip\"\nchannels = [\"telegram\"]\n",
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let out = loa(
        dir.path(),
        &["plan", "--from", "2025-01-01", "--to", "2025-02-28"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let line_of = |id: &str| {
        table
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no {id}:\n{table}"))
            .to_string()
    };
    let moved = line_of("tet-move");
    assert!(moved.starts_with("2025-02-03T08:00:00+07:00"), "{moved}");
    assert!(
        moved.ends_with("moved from 2025-01-29 (Tết Nguyên Đán)"),
        "{moved}"
    );
    let skipped = line_of("tet-skip");
    assert!(
        skipped.starts_with("2025-01-30T08:00:00+07:00"),
        "{skipped}"
    );
    assert!(
        skipped.ends_with("skipped: 2025-01-30 is Tết Nguyên Đán"),
        "{skipped}"
    );

    // A bad value is a problem of the schedule's file and line.
    std::fs::write(
        dir.path().join("schedules/tet.toml"),
        "[[schedule]]\nid = \"tet-move\"\nobservance = \"truyen-thong-thuong-xuyen\"\ntemplate = \"phap-luat-01-binh-dang-gioi\"\ncron = \"0 0 8 29 1 *\"\non_holiday = \"postpone\"\nchannels = [\"telegram\"]\n",
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("schedules/tet.toml:6: on_holiday: \"postpone\" must be"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_holidays_entry_is_a_config_problem() {
    let dir = copy_of_repo();
    let config = dir.path().join("loa.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let broken = text.replacen("from = \"02-08\"", "from = \"02-18\"", 1);
    assert_ne!(broken, text);
    std::fs::write(&config, broken).unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(
        report.contains("loa.toml:")
            && report.contains("holidays (year 2024, 02-18 to 02-14): from is after to"),
        "{report}"
    );
}

#[test]
fn check_accepts_the_shipped_files() {
    let out = loa(&repo_root(), &["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with("ok:"));
}

#[test]
fn check_points_at_the_broken_template_and_schedule() {
    let dir = copy_of_repo();
    let template = dir.path().join("messages/quoc-te-phu-nu.telegram.hbs");
    let text = std::fs::read_to_string(&template).unwrap();
    // Line 3 names a variable that does not exist.
    let broken = text.replacen("{{person.salutation}}", "{{person.salutaton}}", 1);
    assert_ne!(broken, text);
    std::fs::write(&template, broken).unwrap();
    std::fs::write(
        dir.path().join("schedules/broken.toml"),
        "[[schedule]]\nid = \"broken\"\nobservance = \"Thử\"\ntemplate = \"quoc-te-phu-nu\"\ncron = \"0 8 * *\"\nchannels = [\"telegram\"]\naudience = { areas = [\"xa-khong-co\"] }\n",
    )
    .unwrap();

    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(
        report.contains(
            "messages/quoc-te-phu-nu.telegram.hbs:3: unknown variable \"person.salutaton\""
        ),
        "{report}"
    );
    assert!(
        report.contains("schedules/broken.toml:5: cron:"),
        "{report}"
    );
    assert!(
        report
            .contains("schedules/broken.toml:7: audience.areas: unknown area code \"xa-khong-co\""),
        "{report}"
    );
    for line in report.lines() {
        let (file, rest) = line.split_once(':').unwrap();
        let (number, _) = rest.split_once(':').unwrap();
        assert!(Path::new(file).extension().is_some(), "file first: {line}");
        assert!(
            number.parse::<usize>().is_ok(),
            "then a line number: {line}"
        );
    }
}

#[test]
fn check_fails_a_campaign_sms_that_does_not_say_how_to_stop() {
    let dir = copy_of_repo();
    let template = dir.path().join("messages/ngay-gia-dinh.sms.hbs");
    let text = std::fs::read_to_string(&template).unwrap();
    let without = text.replace("\n{{sms.opt_out}}", "");
    assert_ne!(without, text);
    std::fs::write(&template, without).unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "messages/ngay-gia-dinh.sms.hbs:1: a campaign SMS must end with {{sms.opt_out}}"
        ),
        "{}",
        stdout(&out)
    );

    // The shipped files warn while no number receives replies, and not once one is set.
    let shipped = loa(&repo_root(), &["check"]);
    assert!(stdout(&shipped).contains("warning: sms.reply_number is not set"));
    let config = dir.path().join("loa.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&template, text).unwrap();
    std::fs::write(
        &config,
        toml.replace("[sms]\n", "[sms]\nreply_number = \"8079\"\n"),
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!stdout(&out).contains("reply_number"), "{}", stdout(&out));
    let preview = loa(
        dir.path(),
        &["preview", "ngay-gia-dinh", "--area", "tt-thang"],
    );
    assert!(
        stdout(&preview).contains("Từ chối nhận tin: soạn TC gửi 8079\n"),
        "{}",
        stdout(&preview)
    );

    // A number residents cannot text is refused with its line.
    std::fs::write(
        &config,
        toml.replace("[sms]\n", "[sms]\nreply_number = \"UBND HHoa\"\n"),
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("sms.reply_number"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_fails_a_support_number_printed_without_what_it_is() {
    let dir = copy_of_repo();
    let template = dir.path().join("messages/pcbldg-ho-tro.sms.hbs");
    let text = std::fs::read_to_string(&template).unwrap();
    let bare = text.replace("{{labelled}}", "{{number}}");
    assert_ne!(bare, text);
    std::fs::write(&template, bare).unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "messages/pcbldg-ho-tro.sms.hbs:2: lists 111 without saying what it is: print {{labelled}} (\"111 (bảo vệ trẻ em)\")"
        ),
        "{}",
        stdout(&out)
    );
    // The shipped files warn that no line for adults facing violence is configured yet.
    let shipped = loa(&repo_root(), &["check"]);
    assert!(
        stdout(&shipped).contains("warning: [support] has no line for adults"),
        "{}",
        stdout(&shipped)
    );
}

#[test]
fn themes_come_from_the_schedules_by_year_and_plan_warns_of_a_year_without_one() {
    // 2024's June month has its theme; the message of 1 June carries it.
    let out = loa(
        &repo_root(),
        &[
            "preview",
            "pcbldg-phat-dong",
            "--date",
            "2024-06-01",
            "--area",
            "tt-thang",
        ],
    );
    assert!(
        stdout(&out).contains("“Chấm dứt bạo lực, vun đắp yêu thương”"),
        "{}",
        stdout(&out)
    );
    // 2023's was another; the same template says so without being edited.
    let out = loa(
        &repo_root(),
        &[
            "preview",
            "pcbldg-phat-dong",
            "--date",
            "2023-06-01",
            "--area",
            "tt-thang",
        ],
    );
    assert!(
        stdout(&out).contains("“Gia đình hạnh phúc – Quốc gia thịnh vượng”"),
        "{}",
        stdout(&out)
    );
    // 2022's June month has no confirmed theme: the message goes without one, and the plan warns.
    let out = loa(
        &repo_root(),
        &[
            "preview",
            "pcbldg-phat-dong",
            "--date",
            "2022-06-01",
            "--area",
            "tt-thang",
        ],
    );
    assert!(!stdout(&out).contains("chủ đề"), "{}", stdout(&out));
    let out = loa(
        &repo_root(),
        &["plan", "--from", "2022-01-01", "--to", "2022-12-31"],
    );
    assert!(out.status.success());
    let warned = stderr(&out);
    assert!(
        warned.contains("06-thang-phong-chong-bao-luc-gia-dinh.toml:")
            && warned.contains("\"thang-phong-chong-bao-luc-gia-dinh\" has no theme for 2022"),
        "{warned}"
    );
    assert!(
        !warned.contains("\"thang-binh-dang-gioi\""),
        "2022 has one: {warned}"
    );
}

#[test]
fn check_warns_of_a_slogan_in_a_template_and_a_fire_time_on_a_holiday() {
    let dir = copy_of_repo();
    // A theme written into a template, as the library once had.
    let template = dir.path().join("messages/pcbldg-tong-ket.telegram.hbs");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        format!("{text}\n<b>Chấm dứt bạo lực, vun đắp yêu thương</b>\n"),
    )
    .unwrap();
    // A message on 1 January, a public holiday every year.
    std::fs::write(
        dir.path().join("schedules/tet-duong-lich.toml"),
        "[[schedule]]\nid = \"chuc-mung-nam-moi\"\nobservance = \"truyen-thong-thuong-xuyen\"\ntemplate = \"phap-luat-01-binh-dang-gioi\"\ncron = \"0 0 9 1 1 *\"\nchannels = [\"telegram\"]\nsame_day_ok = true\n",
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    let report = stdout(&out);
    let lines = text.lines().count();
    assert!(
        report.contains(&format!(
            "messages/pcbldg-tong-ket.telegram.hbs:{}: warning: this template writes a yearly theme",
            lines + 2
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "schedules/tet-duong-lich.toml:2: warning: schedule \"chuc-mung-nam-moi\" at "
        ) && report.contains("moved from"),
        "{report}"
    );
    // The shipped files carry neither.
    let shipped = stdout(&loa(&repo_root(), &["check"]));
    assert!(!shipped.contains("writes a yearly theme"), "{shipped}");
    assert!(!shipped.contains("moved from"), "{shipped}");
}

#[test]
fn a_contact_point_s_phone_is_printed_with_it_and_checked() {
    let dir = copy_of_repo();
    let config = dir.path().join("loa.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let with_phone = toml.replacen(
        "contact_point = \"UBND xã Bắc Lý (công chức Văn hóa – Xã hội)\"",
        "contact_point = \"UBND xã Bắc Lý (công chức Văn hóa – Xã hội)\"\ncontact_phone = \"0204 3871 234\"",
        1,
    );
    assert_ne!(with_phone, toml);
    std::fs::write(&config, &with_phone).unwrap();
    let out = loa(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!stdout(&out).contains(" bac-ly,"), "{}", stdout(&out));
    let preview = loa(
        dir.path(),
        &["preview", "pcbldg-ho-tro", "--area", "bac-ly"],
    );
    assert!(
        stdout(&preview).contains("UBND xã Bắc Lý (công chức Văn hóa – Xã hội), ĐT 0204 3871 234"),
        "{}",
        stdout(&preview)
    );
    std::fs::write(
        &config,
        with_phone.replace(
            "contact_phone = \"0204 3871 234\"",
            "contact_phone = \"gọi UBND\"",
        ),
    )
    .unwrap();
    let out = loa(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("areas.contact_phone: area \"bac-ly\": \"gọi UBND\" is not a phone number"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_refuses_to_start_half_configured() {
    let dir = copy_of_repo();
    let config = std::fs::read_to_string(dir.path().join("loa.toml")).unwrap();
    std::fs::write(
        dir.path().join("loa.toml"),
        config.replace("Asia/Ho_Chi_Minh", "Asia/Hanoi"),
    )
    .unwrap();
    let out = loa(dir.path(), &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = config
        .lines()
        .position(|l| l.starts_with("time_zone"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("loa.toml:{line}: campaign.time_zone")),
        "{err}"
    );
    assert!(
        !dir.path().join("data/loa.db").exists(),
        "nothing was started"
    );
}

/// Kills the child on drop, so a failed assertion never leaves a server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stderr as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, giving up after `limit`; returns everything read.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
    seen: &mut Vec<String>,
) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn run_on_a_fresh_directory_serves_healthz_sends_through_log_and_stops_on_sigterm() {
    let dir = copy_of_repo();
    // A subscriber, so the 8 March occurrence has someone to reach.
    let db_url = format!("sqlite://{}/data/loa.db", dir.path().display());
    let setup = loa::app::Setup::load(
        &dir.path().join("loa.toml"),
        &Env::default().with("LOA_DATABASE_URL", &db_url),
    )
    .unwrap();
    let db = setup.open_database().await.unwrap();
    let now = chrono::Utc::now();
    let person = loa::audience::add_person(
        &db,
        &setup.config.areas,
        "Nguyễn Thị Lan",
        "bac-ly",
        &[],
        now,
    )
    .await
    .unwrap();
    loa::audience::add_contact(&db, person, ChannelKind::Telegram, "987654321", now)
        .await
        .unwrap();
    db.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args([
            "run",
            "--clock",
            "2023-03-08T07:59:58+07:00",
            "--clock-speed",
            "1",
        ])
        .current_dir(dir.path())
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("LOA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LOA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    let child = Running(child);
    let mut seen = Vec::new();

    assert!(
        wait_for(&lines, "web server on", Duration::from_secs(30), &mut seen),
        "{seen:#?}"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        dir.path().join("data/loa.db").exists(),
        "SQLite database created in data/"
    );

    // 08:00 on the virtual clock: the message goes to the log channel, recipient masked.
    assert!(
        wait_for(&lines, "Nguyễn Thị Lan", Duration::from_secs(30), &mut seen),
        "{seen:#?}"
    );
    let all = seen.join("\n");
    assert!(all.contains("[telegram → 98*****21]"), "{all}");
    assert!(
        !all.contains("987654321"),
        "the chat id is never printed whole"
    );

    // The send is counted where Prometheus scrapes, and /healthz names the transports.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loa_delivery_outcomes_total{channel=\"telegram\",outcome=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("loa_send_duration_seconds_bucket"),
        "{metrics}"
    );
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["channels"]["telegram"], "log");

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "loa did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn report_reach_prints_every_area_in_table_csv_and_json() {
    let dir = copy_of_repo();
    let table = loa(
        dir.path(),
        &[
            "report",
            "reach",
            "--from",
            "2023-01-01",
            "--to",
            "2023-12-31",
        ],
    );
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = stdout(&table);
    assert!(
        text.contains("Huyện Hiệp Hòa") && text.contains("Xã Bắc Lý"),
        "{text}"
    );
    assert!(text.contains("below"), "{text}");

    let csv = stdout(&loa(
        dir.path(),
        &[
            "report",
            "reach",
            "--format",
            "csv",
            "--from",
            "2023-01-01",
            "--to",
            "2023-12-31",
        ],
    ));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("code,name,parent,population,reached,percent,status,engaged")
    );
    assert_eq!(lines.count(), 26, "the district and its 25 communes");

    let json: serde_json::Value = serde_json::from_slice(
        &loa(
            dir.path(),
            &[
                "report",
                "reach",
                "--format",
                "json",
                "--from",
                "2023-01-01",
                "--to",
                "2023-12-31",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(json["total"]["code"], "hiep-hoa");
    assert_eq!(json["total"]["reached"], 0);
    assert_eq!(json["areas"].as_array().unwrap().len(), 26);
}

#[tokio::test]
async fn user_add_prints_a_password_that_signs_in_once_and_token_create_a_working_token() {
    let dir = copy_of_repo();
    let out = loa(
        dir.path(),
        &["user", "add", "lan", "--role", "staff", "--area", "bac-ly"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = stdout(&out);
    assert!(printed.contains("user lan (staff) created"), "{printed}");
    let password = printed.lines().last().unwrap().trim().to_string();
    assert!(password.len() >= 12, "{printed}");

    // The same name twice, an unknown area, a bad name: exit 1 with the reason, nothing added.
    let again = loa(dir.path(), &["user", "add", "lan", "--role", "admin"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let nowhere = loa(
        dir.path(),
        &["user", "add", "an", "--role", "staff", "--area", "khong-co"],
    );
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("unknown area"));
    let token = loa(
        dir.path(),
        &["token", "create", "--role", "official", "--name", "bao-cao"],
    );
    assert!(token.status.success());
    let token = stdout(&token).trim().to_string();

    // What was printed works against the database `loa run` uses.
    // `loa` ran in `dir`, so its `data/loa.db` is there.
    let env = Env::default().with(
        "LOA_DATABASE_URL",
        format!("sqlite://{}/data/loa.db", dir.path().display()),
    );
    let setup = loa::app::Setup::load(&dir.path().join("loa.toml"), &env).unwrap();
    let db = setup.open_database().await.unwrap();
    let now = chrono::Utc::now();
    let session = loa::console::accounts::sign_in(&db, "lan", &password, now)
        .await
        .unwrap()
        .expect("the printed password signs in");
    assert!(session.user.must_change_password);
    assert_eq!(session.user.area.as_deref(), Some("bac-ly"));
    let actor = loa::console::accounts::token_actor(&db, &token, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (actor.id.as_str(), actor.role),
        ("token:bao-cao", loa::console::Role::Official)
    );
    assert_eq!(loa::console::accounts::count_users(&db).await.unwrap(), 1);
    let log = loa::console::audit::latest(&db, 10, 0).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["token.create", "user.add"]);
}

#[tokio::test]
async fn tokens_are_listed_without_their_secret_and_revoked_at_once() {
    let dir = copy_of_repo();
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let today = || chrono::Utc::now().with_timezone(&tz).date_naive();
    let before = today();
    let created = loa(
        dir.path(),
        &[
            "token",
            "create",
            "--role",
            "official",
            "--name",
            "bao-cao",
            "--expires-in",
            "30",
        ],
    );
    let after = today();
    assert!(created.status.success(), "{}", stderr(&created));
    // The token alone on stdout (for `TOKEN=$(loa token create …)`); its expiry beside it.
    let token = stdout(&created).trim().to_string();
    assert!(token.starts_with("loa_") && !token.contains(char::is_whitespace));
    let last_day = |d: NaiveDate| d + chrono::Days::new(30);
    let told = stderr(&created);
    assert!(
        [before, after].iter().any(|&d| told.contains(&format!(
            "expires at the end of {} (Asia/Ho_Chi_Minh)",
            last_day(d)
        ))),
        "{told}"
    );

    // A second live token of that name would make the audit log ambiguous.
    let twin = loa(
        dir.path(),
        &["token", "create", "--role", "admin", "--name", "bao-cao"],
    );
    assert_eq!(twin.status.code(), Some(1));
    assert!(
        stderr(&twin).contains("a live token is already named \"bao-cao\" (id 1)"),
        "{}",
        stderr(&twin)
    );
    let past = loa(
        dir.path(),
        &[
            "token",
            "create",
            "--role",
            "staff",
            "--name",
            "cu",
            "--expires",
            "2020-01-01",
        ],
    );
    assert_eq!(past.status.code(), Some(1));
    assert!(stderr(&past).contains("--expires 2020-01-01 is in the past"));

    let list = loa(dir.path(), &["token", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let table = stdout(&list);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "id",
            "name",
            "role",
            "area",
            "created",
            "expires",
            "last used",
            "state"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["1", "bao-cao", "official", "all"], "{table}");
    assert!(
        [before, after]
            .iter()
            .any(|&d| table.contains(&format!("end of {}", last_day(d)))),
        "{table}"
    );
    assert_eq!(&row[row.len() - 2..], ["never", "active"], "{table}");
    assert!(table.contains("times in Asia/Ho_Chi_Minh"), "{table}");
    let hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !table.contains(&token) && !table.contains(&hash) && !table.contains("loa_"),
        "{table}"
    );

    // Stored: the first instant of the day after the last one, in the campaign's time zone.
    let (_, db) = database_of(dir.path()).await;
    let listed = accounts::list_tokens(&db).await.unwrap();
    let end = listed[0].expires_at.unwrap();
    assert!(
        [before, after]
            .iter()
            .any(|&d| end == loa::calendar::local_midnight(last_day(d) + chrono::Days::new(1), tz)),
        "{end}"
    );
    let now = chrono::Utc::now();
    assert!(
        accounts::token_actor(&db, &token, now)
            .await
            .unwrap()
            .is_some()
    );

    let revoked = loa(dir.path(), &["token", "revoke", "1"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("token 1 (bao-cao) revoked"));
    let table = stdout(&loa(dir.path(), &["token", "list"]));
    assert!(
        table.lines().nth(1).unwrap().ends_with("revoked"),
        "{table}"
    );
    assert!(
        accounts::token_actor(&db, &token, chrono::Utc::now())
            .await
            .unwrap()
            .is_none(),
        "a revoked token authenticates nobody"
    );
    let again = loa(dir.path(), &["token", "revoke", "1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("token 1 (bao-cao) is already revoked"));
    let unknown = loa(dir.path(), &["token", "revoke", "42"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no API token has id 42"));

    let log = audit::latest(&db, 10, 0).await.unwrap();
    let entries: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [
            ("cli", "token.revoke", Some("token:bao-cao")),
            ("cli", "token.create", Some("token:bao-cao")),
        ]
    );
    // Once revoked, the name is free for a new token.
    let renewed = loa(
        dir.path(),
        &["token", "create", "--role", "official", "--name", "bao-cao"],
    );
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    db.close().await;
}

#[tokio::test]
async fn revoked_and_expired_tokens_get_401_from_the_api() {
    let app = TestApp::spawn_at("2026-11-30T09:00:00+07:00").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = format!("http://{}/api/me", listener.local_addr().unwrap());
    app.serve_web(listener);
    let (areas, now) = (&app.setup.config.areas, app.clock_now());
    let tz = app.setup.config.campaign.time_zone;
    // As `loa token create --expires 2026-11-30` makes it: good to the end of that day.
    let end_of_day =
        loa::calendar::local_midnight(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), tz);
    let expiring = accounts::create_token_until(
        &app.db,
        areas,
        "het-han",
        Role::Official,
        None,
        Some(end_of_day),
        now,
    )
    .await
    .unwrap();
    let revoked =
        accounts::create_token_until(&app.db, areas, "thu-hoi", Role::Official, None, None, now)
            .await
            .unwrap();
    let lasting = accounts::create_token(&app.db, areas, "con-han", Role::Official, None, now)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let status = async |token: &str| {
        http.get(&me)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for token in [&expiring.token, &revoked.token, &lasting] {
        assert_eq!(status(token).await, 200);
    }

    accounts::revoke_token(&app.db, revoked.id, "cli", now)
        .await
        .unwrap();
    assert_eq!(
        status(&revoked.token).await,
        401,
        "revoked: refused at once"
    );

    app.set_clock("2026-11-30T23:59:59+07:00");
    assert_eq!(
        status(&expiring.token).await,
        200,
        "its last day still counts"
    );
    app.set_clock("2026-12-01T00:00:00+07:00");
    assert_eq!(status(&expiring.token).await, 401, "expired at midnight");
    assert_eq!(status(&revoked.token).await, 401);
    assert_eq!(status(&lasting).await, 200);

    let tokens = accounts::list_tokens(&app.db).await.unwrap();
    let seen: Vec<(&str, TokenState, Option<chrono::DateTime<chrono::Utc>>)> = tokens
        .iter()
        .map(|t| (t.name.as_str(), t.state(app.clock_now()), t.last_used_at))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "het-han",
                TokenState::Expired,
                Some(at("2026-11-30T23:59:59+07:00"))
            ),
            ("thu-hoi", TokenState::Revoked, Some(now)),
            (
                "con-han",
                TokenState::Active,
                Some(at("2026-12-01T00:00:00+07:00"))
            ),
        ],
        "last use is what authenticated, not what was refused"
    );

    // A live token's name stays its own; an expired or revoked one's is free again.
    let later = app.clock_now();
    let twin = accounts::create_token(&app.db, areas, "con-han", Role::Admin, None, later).await;
    assert!(
        matches!(twin, Err(loa::console::ConsoleError::Conflict(_))),
        "{twin:?}"
    );
    for name in ["het-han", "thu-hoi"] {
        let renewed = accounts::create_token(&app.db, areas, name, Role::Admin, None, later)
            .await
            .unwrap();
        assert_eq!(status(&renewed).await, 200);
    }
}

#[tokio::test]
async fn import_takes_off_the_mark_exports_put_on_text_that_looks_like_a_formula() {
    let dir = copy_of_repo();
    std::fs::write(
        dir.path().join("danh-ba.csv"),
        "name,phone,area,tags\n'=Nguyễn,'0912345678,'bac-ly,'+thanh-nien\n",
    )
    .unwrap();
    let out = loa(dir.path(), &["import", "contacts", "danh-ba.csv"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("1 added, 0 updated, 0 rejected"));

    let (_, db) = database_of(dir.path()).await;
    let row = sqlx::query(
        "SELECT p.name, p.area_code, c.address, t.tag FROM persons p
         JOIN contacts c ON c.person_id = p.id JOIN person_tags t ON t.person_id = p.id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let got: (String, String, String, String) = (
        row.try_get(0).unwrap(),
        row.try_get(1).unwrap(),
        row.try_get(2).unwrap(),
        row.try_get(3).unwrap(),
    );
    assert_eq!(
        got,
        (
            "=Nguyễn".to_string(),
            "bac-ly".to_string(),
            "+84912345678".to_string(),
            // Tags are stored as audiences name them: letters, digits and '-'.
            "thanh-nien".to_string()
        )
    );
    db.close().await;
}

#[test]
fn report_reach_csv_keeps_area_names_from_being_read_as_formulas() {
    let dir = copy_of_repo();
    let config = std::fs::read_to_string(dir.path().join("loa.toml")).unwrap();
    let renamed = config.replace("name = \"Xã Bắc Lý\"", "name = \"=Xã Bắc Lý\"");
    assert_ne!(renamed, config);
    std::fs::write(dir.path().join("loa.toml"), renamed).unwrap();
    let out = loa(
        dir.path(),
        &[
            "report",
            "reach",
            "--format",
            "csv",
            "--from",
            "2023-01-01",
            "--to",
            "2023-12-31",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("bac-ly,'=Xã Bắc Lý,hiep-hoa,10900,0,")),
        "{csv}"
    );
}
