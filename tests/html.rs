//! The HTML compliance page: built from a history of nightly runs of real
//! verifications, self-contained, and rendered by headless Chromium into a
//! screenshot that shows the charts.

mod common;

use std::path::Path;
use std::process::Command;

use backproof::commands::verify::{VerifyRequest, verify};
use backproof::history::History;
use backproof::verify::VerifyOptions;
use chrono::{Duration, Utc};
use common::*;

/// Ten nights: the clean corpus passes, except nights 4 and 8 when a
/// truncated dump is in the source too.
fn history_of_nights(h: &Path) {
    let mut history = History::open(h).unwrap();
    let clean = corpus().join("clean/mysql");
    let broken = corpus().join("corrupt/mysql-truncated");
    for night in (0..10).rev() {
        let mut paths = vec![clean.clone()];
        if night % 4 == 0 && night > 0 {
            paths.push(broken.clone());
        }
        let mut r = verify(&VerifyRequest {
            paths: paths.to_vec(),
            timestamp_pattern: None,
            options: VerifyOptions::default(),
            s3: Default::default(),
            show_progress: false,
            restore: None,
            history: None,
        })
        .unwrap()
        .report;
        r.started_at = Utc::now() - Duration::days(night) - Duration::hours(2);
        r.finished_at = r.started_at + Duration::seconds(3);
        history.append(&r).unwrap();
    }
}

fn chromium() -> &'static str {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return c;
        }
    }
    panic!("chromium is not installed: scripts/test.sh installs the Debian package `chromium`");
}

#[test]
fn html_report_is_self_contained_and_its_screenshot_shows_the_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path().join("history.sqlite");
    history_of_nights(&h);
    let page = tmp.path().join("report.html");
    let o = bin()
        .args(["report", "--since", "30d", "--format", "html", "--out"])
        .arg(&page)
        .arg("--history")
        .arg(&h)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && html.contains("nightly results per check"));
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains(" href="));
    let external = html.matches("http").count();
    let namespaces = html.matches("http://www.w3.org/2000/svg").count();
    assert_eq!(external, namespaces, "only SVG namespaces may name a URL");

    let (buf, channels) = screenshot(tmp.path(), &page);
    let (mut green, mut red) = (0, 0);
    for px in buf.chunks(channels) {
        match (px[0], px[1], px[2]) {
            (0x2e, 0x9e, 0x57) => green += 1,
            (0xd2, 0x37, 0x2c) => red += 1,
            _ => {}
        }
    }
    // Ten nights of cells at 14x14 px: hundreds of pixels each.
    assert!(green > 1500, "pass cells not visible: {green} green pixels");
    assert!(red > 300, "fail cells not visible: {red} red pixels");
}

/// A 1200x1400 screenshot of `page` by headless Chromium: its pixels and
/// the channels per pixel. Kept in $BACKPROOF_KEEP_SCREENSHOT when set.
fn screenshot(tmp: &Path, page: &Path) -> (Vec<u8>, usize) {
    let shot = tmp.join("shot.png");
    let profile = tmp.join("profile");
    let status = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Count the calendar's pass and fail colours in the picture.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    // Keep the picture for people to look at when run by hand.
    if let Some(dir) = std::env::var_os("BACKPROOF_KEEP_SCREENSHOT") {
        let name = page.file_stem().unwrap().to_string_lossy();
        std::fs::copy(&shot, Path::new(&dir).join(format!("{name}.png"))).unwrap();
    }
    buf.truncate(info.buffer_size());
    (buf, channels)
}

/// `run --demo` writes reports/demo/report.html: its calendar shows seven
/// nights, the failed ones red beside green ones, in one row of cells.
#[test]
fn demo_report_html_shows_seven_nights() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bin()
        .env_remove("BACKPROOF_HISTORY")
        .env("BACKPROOF_DEMO_SERVERS", "none")
        .args(["run", "--demo"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let page = tmp.path().join("reports/demo/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("nightly results per check"));
    assert!(html.contains("4 of 7 run(s) had a failed check"), "{html}");

    let (buf, channels) = screenshot(tmp.path(), &page);
    let width = 1200;
    let color = |px: &[u8]| match (px[0], px[1], px[2]) {
        (0x2e, 0x9e, 0x57) => Some(true),
        (0xd2, 0x37, 0x2c) => Some(false),
        _ => None,
    };
    // A pixel row through the retention row of the calendar: seven cells,
    // green until the night the missing dump left a gap, red from then on.
    let rows: Vec<Vec<bool>> = buf
        .chunks(width * channels)
        .map(|line| {
            let mut cells = Vec::new();
            let mut last = None;
            for px in line.chunks(channels) {
                let c = color(px);
                if c != last
                    && let Some(ok) = c
                {
                    cells.push(ok);
                }
                last = c;
            }
            cells
        })
        .collect();
    let week = [true, true, true, false, false, false, false];
    assert!(
        rows.iter().any(|cells| cells == &week),
        "no calendar row of seven nights, green then red, in the screenshot"
    );
    assert!(
        rows.iter().all(|cells| cells.len() != 8),
        "an eighth night in the calendar"
    );
}

/// Bug: the page was made by string replacement, so a backup named like a
/// placeholder had the failures table pasted into its name.
#[test]
fn html_report_does_not_expand_template_placeholders_in_user_data() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let name = "{{failures}}-2026-11-21.sql.gz";
    std::fs::copy(
        corpus().join("clean/mysql/shop-2026-11-20T0300.sql.gz"),
        src.join(name),
    )
    .unwrap();
    let h = tmp.path().join("history.sqlite");
    let r = verify(&VerifyRequest {
        paths: vec![src],
        timestamp_pattern: None,
        options: VerifyOptions::default(),
        s3: Default::default(),
        show_progress: false,
        restore: None,
        history: None,
    })
    .unwrap()
    .report;
    History::open(&h).unwrap().append(&r).unwrap();
    let o = bin()
        .args(["report", "--since", "30d", "--format", "html", "--history"])
        .arg(&h)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let html = String::from_utf8(o.stdout).unwrap();
    assert!(html.contains(name), "the backup's name is not on the page");
    assert!(
        !html.contains("</p>-2026-11-21"),
        "a placeholder was expanded"
    );
}
