//! The HTML compliance page: built from a history of nightly runs of real
//! verifications, self-contained, and rendered by headless Chromium into a
//! screenshot that shows the charts.

mod common;

use std::path::Path;
use std::process::Command;

use backproof::commands::verify::{VerifyRequest, verify};
use backproof::finding::{Check, Finding, Status};
use backproof::history::{ChainCheck, History, StoredBackup, StoredRun};
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
            shard: backproof::shard::Shard::WHOLE,
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
    screenshot_of(tmp, page, 1400)
}

fn screenshot_of(tmp: &Path, page: &Path, height: usize) -> (Vec<u8>, usize) {
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
        ])
        .arg(format!("--window-size=1200,{height}"))
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
/// nights, the failed ones red beside green ones, in one row of cells, and
/// tonight's restores (PostgreSQL and MariaDB, which scripts/test.sh
/// installs) in one labelled chart per source.
#[test]
fn demo_report_html_shows_seven_nights() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bin()
        .env_remove("BACKPROOF_HISTORY")
        .env_remove("BACKPROOF_DEMO_SERVERS")
        .args(["run", "--demo"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let page = tmp.path().join("reports/demo/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("nightly results per check"));
    assert!(html.contains("4 of 7 run(s) had a failed check"), "{html}");
    for source in ["postgres", "mysql"] {
        assert!(
            html.contains(&format!("aria-label=\"restore durations of {source}\"")),
            "no restore chart for {source}"
        );
    }

    let (buf, channels) = screenshot_of(tmp.path(), &page, 3000);
    let width = 1200;
    let color = |px: &[u8]| match (px[0], px[1], px[2]) {
        (0x2e, 0x9e, 0x57) => Some(true),
        (0xd2, 0x37, 0x2c) => Some(false),
        _ => None,
    };
    let rgb = |px: &[u8], c: (u8, u8, u8)| (px[0], px[1], px[2]) == c;
    let blue = |px: &[u8]| rgb(px, (0x3b, 0x6f, 0xd1));
    let lines: Vec<&[u8]> = buf.chunks(width * channels).collect();
    // The calendar starts under its legend (the first line with the warn
    // and error colours side by side; the status chips above have white
    // letters that split their red) and ends at the first 30 lines without
    // a cell (red notes and the backup-age dots below have its colours).
    let legend = |l: &[u8]| {
        l.chunks(channels).any(|p| rgb(p, (0xe0, 0xa5, 0x26)))
            && l.chunks(channels).any(|p| rgb(p, (0x6b, 0x6f, 0x7b)))
    };
    let legend_at = lines.iter().position(|l| legend(l)).expect("no legend");
    let calendar_start = legend_at + lines[legend_at..].iter().take_while(|l| legend(l)).count();
    let cells = |l: &[u8]| l.chunks(channels).any(|p| color(p).is_some());
    let top = calendar_start
        + lines[calendar_start..]
            .iter()
            .position(|l| cells(l))
            .expect("no calendar");
    let calendar_end = top
        + lines[top..]
            .windows(30)
            .position(|w| !w.iter().any(|l| cells(l)))
            .unwrap_or(lines.len() - top);
    // A pixel row through the retention row of the calendar: seven cells,
    // green until the night the missing dump left a gap, red from then on.
    let rows: Vec<Vec<bool>> = lines[calendar_start + 1..calendar_end]
        .iter()
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
    // Tonight's two restores drawn: each a dot ringed in the charts' blue
    // (a ring of 4.5 px radius holds some 9 pixels of exactly that blue).
    let blue = buf.chunks(channels).filter(|px| blue(px)).count();
    assert!(blue >= 12, "restore dots not drawn: {blue} blue pixels");
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
        shard: backproof::shard::Shard::WHOLE,
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

/// An estate of 10,000 backups in 20 sources, every one verified on each of
/// 30 nights (600,000 findings), with what goes wrong in real estates: a
/// source whose dumps went corrupt on night 20, one backup that cannot be
/// read, a promise broken for three nights, a source without manifests
/// (warnings) and a source whose restores outgrew its RTO.
fn estate() -> Vec<StoredRun> {
    let now = Utc::now();
    let long = "/srv/backups/customers/eu-west-1/tenant-with-a-rather-long-name/postgresql-main";
    let location = |s: usize| match s {
        19 => long.to_string(),
        _ => format!("/srv/backups/site-{s:02}"),
    };
    let name = |s: usize| match s {
        19 => "eu-west-1-tenant-with-a-rather-long-name-postgresql-main".to_string(),
        _ => format!("site-{s:02}"),
    };
    (0..30)
        .map(|night| {
            let at = now - Duration::days(29 - night) - Duration::hours(3);
            let mut findings = Vec::new();
            let mut backups = Vec::new();
            for s in 0..20 {
                for b in 0..500 {
                    let subject = format!("{}/db-{b:04}.dump", location(s));
                    let (status, summary) = match (s, b) {
                        (3, 0..40) if night >= 20 => {
                            (Status::Fail, "SHA-256 mismatch with SHA256SUMS")
                        }
                        (7, 9) => (Status::Error, "cannot read: permission denied"),
                        (11, _) => (Status::Warn, "not covered by any manifest"),
                        _ => (Status::Pass, "matches SHA256SUMS"),
                    };
                    findings.push(Finding::new(&subject, Check::Integrity, status, summary));
                    findings.push(Finding::new(
                        &subject,
                        Check::Structure,
                        Status::Pass,
                        "custom-format dump, 12 tables",
                    ));
                    backups.push(StoredBackup {
                        subject,
                        kind: "pg_custom".into(),
                        timestamp: (at - Duration::days(b as i64 % 30)).to_rfc3339(),
                        size: 1 << 30,
                    });
                }
                let (seconds, rto) = match s {
                    2 => (30.0 + 2.0 * night as f64, 60.0),
                    _ => (20.0 + (night % 7) as f64, 3600.0),
                };
                findings.push(
                    Finding::new(
                        format!("{}/nightly-{night:02}.dump", location(s)),
                        Check::Restore,
                        if seconds > rto {
                            Status::Fail
                        } else {
                            Status::Pass
                        },
                        "restored into a scratch server",
                    )
                    .with("source", name(s))
                    .with("restore_seconds", seconds)
                    .with("rto_seconds", rto),
                );
                let late = s == 5 && night >= 27;
                findings.push(
                    Finding::new(
                        format!("daily {}", name(s)),
                        Check::Freshness,
                        if late { Status::Fail } else { Status::Pass },
                        if late {
                            "newest backup is 2d old (promise: at most 1d)"
                        } else {
                            "newest backup is 3h old"
                        },
                    )
                    .with("policy", format!("daily {}", name(s)))
                    .with("source", name(s))
                    .with("age_seconds", if late { 172_800 } else { 10_800 })
                    .with("fail_after_seconds", 86_400),
                );
            }
            StoredRun {
                id: night + 1,
                started_at: at,
                command: "run".into(),
                exit_code: 1,
                hash: format!("h{night}"),
                findings,
                backups,
                interrupted: None,
                sources: (0..20).map(location).collect(),
                source_names: (0..20).map(|s| (location(s), name(s))).collect(),
            }
        })
        .collect()
}

/// Issue 14: at 10,000 backups the page stays under 1 MB and readable:
/// failures first, grouped; passes counted, not listed; each status its
/// own rate; a restore chart per source with its RTO; labels whole.
#[test]
fn an_estate_of_ten_thousand_backups_reads_on_one_page_under_a_megabyte() {
    let runs = estate();
    let chain = ChainCheck {
        location: "/var/lib/backproof/history.sqlite".into(),
        runs: runs.len(),
        pruned: 0,
        head: "h29".into(),
        problems: vec![],
    };
    let c = backproof::compliance::build(&runs, &chain, Utc::now() - Duration::days(31));
    let html = backproof::report::html::render(&c);
    eprintln!(
        "{} bytes of HTML for 10,000 backups x 30 nights",
        html.len()
    );
    assert!(html.len() < 1_000_000, "{} bytes", html.len());

    // Failures first: the corrupt dumps of site-03 head the page, above the
    // calendar, as one group of 40 subjects over 10 nights.
    let attention = html.find("<h2>Needs attention</h2>").unwrap();
    let calendar = html.find("<h2>Nightly results per check</h2>").unwrap();
    assert!(attention < calendar);
    let first_group = &html[attention..calendar];
    let fail = first_group
        .find(">fail</span></td><td>site-03</td><td>integrity")
        .expect("site-03 first");
    assert!(
        first_group[fail..].find(">40<").is_some_and(|i| i < 200),
        "40 subjects"
    );
    assert!(first_group.contains("in the last run"));
    assert!(
        first_group.contains("daily site-05"),
        "the broken promise is grouped too"
    );
    assert!(
        first_group.contains("site-07"),
        "the unreadable backup is an error group"
    );
    let warn_at = first_group
        .find("group(s) of warnings")
        .expect("warnings folded");
    assert!(
        first_group[..warn_at].find("site-11").is_none(),
        "warnings after failures"
    );

    // Passes are counted, not listed.
    assert!(!html.contains("/srv/backups/site-01/db-0001.dump"));
    assert!(html.contains("9459 of 10000 backup(s) passed"), "counted");
    // Rates apart: integrity has 5 % warnings (site-11) and they are not passes.
    assert!(
        html.contains(
            "<td>integrity</td><td class=\"num\">300000</td><td class=\"num\">94.9% (284570)"
        ),
        "integrity pass rate"
    );
    assert!(html.contains("5.0% (15000)"), "integrity warn rate");

    // One restore chart per source, labelled; site-02's RTO is a line
    // its restores cross, the others' RTO is said in words.
    assert_eq!(
        html.matches("aria-label=\"restore durations of ").count(),
        20
    );
    let site02 = html
        .find("aria-label=\"restore durations of site-02\"")
        .unwrap();
    let chart02 = &html[site02..site02 + html[site02..].find("</svg>").unwrap()];
    assert!(chart02.contains("RTO 1m"), "{chart02}");
    assert!(chart02.contains("stroke-dasharray=\"6 4\""));
    assert!(html.contains("RTO 1h is above this scale"));
    // Labels whole: the long source name in full, in a chart wide enough.
    let long = "eu-west-1-tenant-with-a-rather-long-name-postgresql-main";
    let at = html
        .find(&format!("aria-label=\"restore durations of {long}\""))
        .unwrap();
    let open_tag = &html[html[..at].rfind("<svg").unwrap()..at];
    let width: f64 = open_tag
        .split("width=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        width >= long.len() as f64 * 7.0,
        "chart {width} px for a {}-char label",
        long.len()
    );

    // What Chromium shows: the fail chips at the top, restore lines and an
    // RTO line further down.
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("estate.html");
    std::fs::write(&page, &html).unwrap();
    let (buf, channels) = screenshot_of(tmp.path(), &page, 6000);
    let width = 1200;
    let rows: Vec<&[u8]> = buf.chunks(width * channels).collect();
    let count = |rgb: (u8, u8, u8), lines: &[&[u8]]| {
        lines
            .iter()
            .flat_map(|l| l.chunks(channels))
            .filter(|px| (px[0], px[1], px[2]) == rgb)
            .count()
    };
    let red = (0xd2, 0x37, 0x2c);
    let blue = (0x3b, 0x6f, 0xd1);
    assert!(count(red, &rows[..700]) > 300, "no fail chips near the top");
    assert!(count(blue, &rows) > 2000, "restore lines not drawn");
}

/// Issue 14: `verify` given a relative path and `run` given the same
/// directory through a config (relative to the config, with `..`) name it
/// one way, so the export shows one source and each backup once.
#[test]
fn a_directory_named_two_ways_is_one_source_in_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mysql = data.join("mysql");
    copy_dir(&corpus().join("clean/mysql"), &mysql);
    let h = tmp.path().join("history.sqlite");
    let o = bin()
        .current_dir(tmp.path())
        .args(["verify", "./data/mysql/", "--history"])
        .arg(&h)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let cfg = etc.join("backproof.toml");
    std::fs::write(
        &cfg,
        "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"mysql\"\npath = \"../data/./mysql\"\n",
    )
    .unwrap();
    let o = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--history")
        .arg(&h)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .args(["report", "--since", "30d", "--format", "json", "--history"])
        .arg(&h)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sources: Vec<&str> = c["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["mysql"], "{sources:?}");
    let subjects: Vec<&str> = c["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["subject"].as_str().unwrap())
        .collect();
    let canonical = std::fs::canonicalize(&mysql).unwrap();
    assert!(
        subjects
            .iter()
            .all(|s| s.starts_with(&format!("{}/", canonical.display()))),
        "{subjects:?}"
    );
    let dumps = subjects.iter().filter(|s| s.ends_with(".sql.gz")).count();
    assert_eq!(dumps, 1, "one backup, listed once: {subjects:?}");
    assert!(
        c["backups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["times_verified"] == 2)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
