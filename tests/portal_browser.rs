//! The Places portal in a real browser: Debian's headless Chromium, driven
//! through chromedriver with fantoccini (WebDriver). The portal serves
//! HTTPS in-process with a certificate of the cloud's CA (the browser is
//! told `--ignore-certificate-errors`); chromedriver and Chromium are
//! children of the test, so they live in the test's private network
//! (`lan_test!`) and reach nothing else.
//!
//! Without `chromium` and `chromedriver` the test fails and says what to
//! install: a browser test that passes without a browser proves nothing.
//!
//! It also takes the README's screenshots (`docs/portal-places.png`,
//! `docs/portal-place.png`): into `target/tmp/` always, and into the
//! directory named by `HANDOFF_SCREENSHOTS` when set (`docs` refreshes the
//! README's).

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use handoff::cloud::{AccessDuration, AccountId, CloudStore, Command, PlaceId, ProcessorRecord};
use handoff::identity::CertificateAuthority;
use handoff::portal::{Clock, PortalOptions, RunningPortal, WebTls};
use handoff::processor::Serial;
use handoff::proto::{EventId, EventKind, RelayEvent, ShareAccess};
use serde_json::{Value, json};

use common::{ChildGuard, TempDir, create_place as create, handoff, newest_link, wait_for_port};

const PRO: &str = "pro@example.com";
const OFFICE: &str = "office@example.com";
const COLLEAGUE: &str = "colleague@example.com";
const FRIEND: &str = "friend@example.com";
const HOMEOWNER: &str = "home@example.com";
const SITE_BOX: &str = "lake-box";

/// The designer's icon colours (`portal.css`), as the browser computes
/// them.
const GREEN: &str = "rgb(42, 157, 58)";
const GREY: &str = "rgb(153, 153, 153)";
const RED: &str = "rgba(155, 34, 38, 1)";

/// Debian's Chromium and its WebDriver (`HANDOFF_CHROMIUM`,
/// `HANDOFF_CHROMEDRIVER` name others).
fn browser_binaries() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("HANDOFF_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let driver = std::env::var_os("HANDOFF_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    let (chromium, driver) = (PathBuf::from(chromium), PathBuf::from(driver));
    let missing: Vec<String> = [&chromium, &driver]
        .into_iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "the real-browser test needs Chromium and chromedriver; missing: {}. Install Debian's \
         packages: `apt-get install chromium chromium-driver` (.ci/run does)",
        missing.join(", ")
    );
    (chromium, driver)
}

/// chromedriver on a free loopback port, killed at drop.
struct Driver {
    url: String,
    chromium: PathBuf,
    _child: ChildGuard,
    _log: TempDir,
}

impl Driver {
    fn start() -> Driver {
        let (chromium, driver) = browser_binaries();
        let port = common::free_port();
        let log = TempDir::new("chromedriver");
        let child = Process::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                log.path("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let child = ChildGuard(child);
        wait_for_port(([127, 0, 0, 1], port).into());
        Driver {
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            _child: child,
            _log: log,
        }
    }

    /// A new browser session: its own profile, so its own cookies.
    async fn session(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--ignore-certificate-errors",
                         "--window-size=1100,900", "--no-first-run"],
            }),
        );
        ClientBuilder::rustls()
            .expect("rustls with the system's roots")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

fn run(store: &CloudStore, cmd: Command) {
    store.execute(&cmd, handoff::cloud::now()).unwrap().unwrap();
}

fn share(store: &CloudStore, place: &str, by: &str, to: &str, duration: AccessDuration) {
    run(
        store,
        Command::ShareAccess {
            place: PlaceId(place.into()),
            by: AccountId::new(by),
            email: AccountId::new(to),
            duration,
        },
    );
}

fn processor(place: &str, serial: u32) -> ProcessorRecord {
    let ca = CertificateAuthority::pairing_authority("processor").unwrap();
    let b = serial.to_be_bytes();
    ProcessorRecord {
        place: PlaceId(place.into()),
        serial: Serial(serial),
        mac: [2, 0x4c, b[0], b[1], b[2], b[3]],
        ca_der: ca.certificate_der().to_vec(),
    }
}

/// The pro's Places: one shared by the office for 30 days (green, with a
/// processor), one for a day (ends soon), one without remote services
/// (grey: only the pro, its creator, sees it), one with no one else and no processor (the last-person guard),
/// and one with a homeowner.
fn fill(store: &CloudStore) {
    create(
        store,
        "lake-house",
        OFFICE,
        true,
        Some(processor("lake-house", 0x0236_e6a7)),
    );
    share(store, "lake-house", OFFICE, PRO, AccessDuration::ThirtyDays);
    // The office's site box relays a share: the Place's last contact.
    let relayed = store
        .relay(
            &AccountId::new(OFFICE),
            &[RelayEvent {
                id: EventId {
                    daemon: SITE_BOX.into(),
                    seq: 1,
                },
                kind: EventKind::ShareAccess(ShareAccess {
                    place: PlaceId("lake-house".into()),
                    email: "installer@example.com".into(),
                    duration: AccessDuration::SevenDays,
                }),
            }],
            handoff::cloud::now(),
        )
        .unwrap();
    assert!(format!("{relayed:?}").contains("Applied"), "{relayed:?}");
    create(store, "beach-office", OFFICE, true, None);
    share(store, "beach-office", OFFICE, PRO, AccessDuration::OneDay);
    create(store, "old-barn", PRO, false, None);
    create(store, "empty-loft", PRO, true, None);
    create(
        store,
        "city-flat",
        PRO,
        true,
        Some(processor("city-flat", 0x0410_0a01)),
    );
    run(
        store,
        Command::Claim {
            place: PlaceId("city-flat".into()),
            by: AccountId::new(HOMEOWNER),
            processor: Serial(0x0410_0a01),
            press_verified: true,
        },
    );
}

/// What the operator CLI answers when the pro revokes their own last
/// access to `empty-loft`: the refusal the page must show alike.
fn cli_last_person_refusal(data: &Path) -> Value {
    let run = handoff(&[
        "cloud",
        "--data",
        data.to_str().unwrap(),
        "access",
        "revoke",
        "empty-loft",
        PRO,
        "--as",
        PRO,
        "--json",
    ]);
    assert_eq!(run.code, Some(3), "the CLI refuses: {}", run.stderr);
    let refusal = run.json();
    assert_eq!(refusal["result"], "refused", "{refusal}");
    refusal
}

fn screenshots_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR"))];
    if let Some(dir) = std::env::var_os("HANDOFF_SCREENSHOTS") {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    for dir in screenshots_dirs() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
    }
}

/// The visible text of the page.
async fn text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("its text")
}

/// Clicks a button that submits a form, and waits for the page the form
/// leads to (chromedriver may answer the click before the browser
/// navigates): until the old document is gone.
async fn submit(browser: &Client, button: Locator<'_>) {
    let old = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(button)
        .await
        .unwrap_or_else(|e| panic!("a button {button:?}: {e}"))
        .click()
        .await
        .unwrap();
    while old.tag_name().await.is_ok() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

async fn choose(browser: &Client, select: &str, value: &str) {
    browser
        .find(Locator::Id(select))
        .await
        .unwrap_or_else(|e| panic!("#{select}: {e}"))
        .select_by_value(value)
        .await
        .unwrap();
}

/// Ticks a checkbox (no navigation).
async fn tick(browser: &Client, checkbox: Locator<'_>) {
    browser
        .find(checkbox)
        .await
        .unwrap_or_else(|e| panic!("{checkbox:?}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn click_button(browser: &Client, label: &str) {
    submit(
        browser,
        Locator::XPath(&format!("//button[normalize-space(.)='{label}']")),
    )
    .await;
}

/// Signs in as `email` as a person does: the sign-in page, the mail in
/// the mail drop, the link, its button. Lands on the Places list.
async fn sign_in(browser: &Client, base: &str, data: &Path, email: &str) {
    browser.goto(&format!("{base}/sign-in")).await.unwrap();
    type_into(browser, "email", email).await;
    click_button(browser, "Email me a sign-in link").await;
    assert!(
        text(browser).await.contains("is on its way"),
        "{}",
        text(browser).await
    );
    let link = newest_link(data, email);
    browser.goto(&link).await.unwrap();
    // Opening the link signs nobody in: a button does.
    click_button(browser, "Sign in").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/",
        "{email} signed in, on the Places list: {}",
        text(browser).await
    );
    assert!(
        text(browser)
            .await
            .contains(&format!("Signed in as {email}"))
    );
}

/// The Places list's row of `place`: its cells' text and its icon's
/// colour.
async fn row(browser: &Client, place: &str) -> (String, String) {
    let tr = browser
        .find(Locator::XPath(&format!(
            "//tr[td/a[normalize-space(.)='{place}']]"
        )))
        .await
        .unwrap_or_else(|e| panic!("a row for {place}: {e}"));
    let colour = tr
        .find(Locator::Css(".status svg"))
        .await
        .unwrap()
        .css_value("fill")
        .await
        .unwrap();
    (tr.text().await.unwrap(), colour)
}

/// Manage Access's row of `account`, as text.
async fn access_row(browser: &Client, account: &str) -> String {
    browser
        .find(Locator::XPath(&format!(
            "//tr[td[1][normalize-space(.)='{account}']]"
        )))
        .await
        .unwrap_or_else(|e| panic!("an access row for {account}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn open_place(browser: &Client, base: &str, place: &str) {
    browser
        .goto(&format!("{base}/places/{place}"))
        .await
        .unwrap();
    assert!(
        text(browser).await.contains(&format!("Place {place}")),
        "{}",
        text(browser).await
    );
}

async fn option(browser: &Client, select: &str, value: &str) -> (bool, String) {
    let option = browser
        .find(Locator::Css(&format!("#{select} option[value='{value}']")))
        .await
        .unwrap();
    (
        option.is_enabled().await.unwrap(),
        option.text().await.unwrap(),
    )
}

async fn scenario(base: &str, data: &Path, refusal: &Value) {
    let driver = Driver::start();

    // The pro signs in through the mail drop and sees their Places.
    let pro = driver.session().await;
    sign_in(&pro, base, data, PRO).await;
    let (lake, colour) = row(&pro, "lake-house").await;
    assert!(lake.contains("Green") && lake.contains("29d 23h"), "{lake}");
    assert_eq!(colour, GREEN, "lake-house's icon");
    assert!(!lake.contains("ends soon"), "{lake}");
    assert!(lake.contains(SITE_BOX), "the last contact: {lake}");
    let (beach, _) = row(&pro, "beach-office").await;
    assert!(
        beach.contains("23h") && beach.contains("ends soon"),
        "{beach}"
    );
    let soon = pro
        .find(Locator::XPath(
            "//tr[td/a[normalize-space(.)='beach-office']]//span[@class='soon']",
        ))
        .await
        .expect("beach-office's time flagged")
        .css_value("color")
        .await
        .unwrap();
    assert_eq!(soon, RED, "the flag on a time that ends soon");
    // Without remote services nobody reaches the Place (the designer's
    // grey): only its creator sees it listed, grey, marked as such.
    let (barn, colour) = row(&pro, "old-barn").await;
    assert_eq!(colour, GREY, "old-barn's icon");
    for said in [
        "Grey",
        "remote services are disabled",
        "Not in the Places list of anyone else until remote services are enabled",
    ] {
        assert!(barn.contains(said), "{said}: {barn}");
    }
    let (flat, _) = row(&pro, "city-flat").await;
    assert!(flat.contains("unlimited"), "{flat}");
    screenshot(&pro, "portal-places.png").await;

    // Share for 7 days; what is longer than the pro's own 30 days is
    // disabled, with the reason, before any click.
    open_place(&pro, base, "lake-house").await;
    for long in ["30d", "1y", "unlimited"] {
        let (enabled, label) = option(&pro, "share-duration", long).await;
        assert!(!enabled, "{long} is offered: {label}");
        assert!(label.contains("longer than your own access"), "{label}");
    }
    let (enabled, _) = option(&pro, "share-duration", "7d").await;
    assert!(enabled);
    type_into(&pro, "share-email", COLLEAGUE).await;
    choose(&pro, "share-duration", "7d").await;
    click_button(&pro, "Share").await;
    let page = text(&pro).await;
    assert!(
        page.contains(&format!(
            "Done: shared Place lake-house with {COLLEAGUE} for 7 days"
        )),
        "{page}"
    );
    let colleague = access_row(&pro, COLLEAGUE).await;
    for cell in ["pro installer", &format!("shared by {PRO}")] {
        assert!(colleague.contains(cell), "{colleague}");
    }
    // Seven days from the click: the same second, or one later.
    assert!(
        colleague.contains("7d 0h") || colleague.contains("6d 23h"),
        "{colleague}"
    );

    // A share link, shown once.
    choose(&pro, "link-duration", "7d").await;
    click_button(&pro, "Generate New Link").await;
    let link = pro
        .find(Locator::Id("new-link"))
        .await
        .expect("the new link")
        .prop("value")
        .await
        .unwrap()
        .expect("a link");
    assert!(link.starts_with(&format!("{base}/links/")), "{link}");
    assert!(
        text(&pro)
            .await
            .contains("stops working when you generate a new one")
    );
    // POST/redirect/GET: the browser is on the Place page, and a refresh
    // sends nothing again: still one link generated, and the new link is
    // not shown a second time.
    let generated = |page: &str| page.matches("generate a share link (7 days)").count();
    let before = text(&pro).await;
    assert_eq!(generated(&before), 1, "{before}");
    assert!(before.contains("Done: share link number"), "{before}");
    assert_eq!(
        pro.current_url().await.unwrap().path(),
        "/places/lake-house"
    );
    pro.refresh().await.unwrap();
    let after = text(&pro).await;
    assert_eq!(
        generated(&after),
        1,
        "a refresh generated another link: {after}"
    );
    assert!(
        !after.contains("Done: share link number"),
        "the message showed twice: {after}"
    );
    assert!(
        pro.find(Locator::Id("new-link")).await.is_err(),
        "the link was shown twice"
    );
    // The whole page, for the README.
    pro.set_window_size(1100, 2300).await.unwrap();
    screenshot(&pro, "portal-place.png").await;
    pro.set_window_size(1100, 900).await.unwrap();

    // A second browser, another account: it redeems the link and sees the
    // Place.
    let friend = driver.session().await;
    sign_in(&friend, base, data, FRIEND).await;
    assert!(!text(&friend).await.contains("lake-house"));
    friend.goto(&link).await.unwrap();
    click_button(&friend, "Redeem link").await;
    let page = text(&friend).await;
    assert!(
        page.contains("Done: you now have access to Place lake-house"),
        "{page}"
    );
    assert!(page.contains("Place lake-house"), "{page}");

    // The pro revokes it; the friend's Place is gone (404, as any Place it
    // never had).
    open_place(&pro, base, "lake-house").await;
    assert!(
        access_row(&pro, FRIEND)
            .await
            .contains(&format!("link from {PRO}"))
    );
    submit(
        &pro,
        Locator::Css(&format!("button[aria-label='Revoke {FRIEND}']")),
    )
    .await;
    assert!(text(&pro).await.contains(&format!(
        "Done: revoked {FRIEND}'s access to Place lake-house"
    )));
    // The Place's timeline, newest first: the revoke, the friend's redeem,
    // the link, the share.
    let rows = pro
        .find_all(Locator::Css("table.timeline tbody tr"))
        .await
        .unwrap();
    let mut timeline = Vec::new();
    for row in rows.iter().take(4) {
        timeline.push(row.text().await.unwrap());
    }
    let expected = [
        (PRO, format!("revoke {FRIEND}")),
        (FRIEND, "redeem share link number 0".to_owned()),
        (PRO, "generate a share link (7 days)".to_owned()),
        (PRO, format!("share with {COLLEAGUE} for 7 days")),
    ];
    for (row, (who, what)) in timeline.iter().zip(&expected) {
        assert!(
            row.contains(who) && row.contains(what) && row.contains("applied"),
            "{timeline:#?}"
        );
    }
    friend
        .goto(&format!("{base}/places/lake-house"))
        .await
        .unwrap();
    assert!(text(&friend).await.contains("Not found"));

    // The grey Place: another account never sees it; its creator enables
    // remote services, confirming that it cannot be undone; it turns
    // green, with no control anywhere to turn them off; the other account
    // still does not see it (it has no grant).
    friend.goto(base).await.unwrap();
    assert!(!text(&friend).await.contains("old-barn"));
    friend
        .goto(&format!("{base}/places/old-barn"))
        .await
        .unwrap();
    assert!(text(&friend).await.contains("Not found"));
    open_place(&pro, base, "old-barn").await;
    let page = text(&pro).await;
    for absent in [
        "Manage Access",
        "Share Access",
        "Generate New Link",
        "Timeline",
    ] {
        assert!(!page.contains(absent), "{absent}: {page}");
    }
    assert!(page.contains("Line for support"), "{page}");
    click_button(&pro, "Enable remote services…").await;
    let page = text(&pro).await;
    assert!(page.contains("This cannot be undone."), "{page}");
    assert!(page.contains("the designer greys the option out"), "{page}");
    assert!(
        !page.contains("Done:"),
        "the first step enabled something: {page}"
    );
    tick(&pro, Locator::Id("confirm-remote")).await;
    click_button(&pro, "Enable remote services").await;
    let page = text(&pro).await;
    assert!(
        page.contains("Done: remote services are on for Place old-barn"),
        "{page}"
    );
    assert_eq!(pro.current_url().await.unwrap().path(), "/places/old-barn");
    let colour = pro
        .find(Locator::Css(".status svg"))
        .await
        .unwrap()
        .css_value("fill")
        .await
        .unwrap();
    assert_eq!(colour, GREEN, "old-barn's icon once enabled: {page}");
    assert!(
        page.contains("Green") && page.contains("Manage Access"),
        "{page}"
    );
    assert!(page.contains("They cannot be turned off"), "{page}");
    // No control to turn them off: no form posts to the action, no
    // button or link says "disable".
    assert!(
        pro.find(Locator::Css("form[action$='/remote-services']"))
            .await
            .is_err(),
        "a remote services control is still on the page"
    );
    assert!(!page.to_lowercase().contains("disable remote"), "{page}");
    assert!(!text(&friend).await.contains("old-barn"));
    friend.goto(base).await.unwrap();
    assert!(!text(&friend).await.contains("old-barn"));
    friend
        .goto(&format!("{base}/places/old-barn"))
        .await
        .unwrap();
    assert!(text(&friend).await.contains("Not found"));

    // The last person, no processor: the guard is on the page, the first
    // Revoke is refused with the CLI's rule and guidance, the second, with
    // its explicit confirmation, deletes the Place.
    open_place(&pro, base, "empty-loft").await;
    assert!(
        text(&pro)
            .await
            .contains("revoking deletes the Place for good")
    );
    let revoke_self = format!("button[aria-label='Revoke {PRO}']");
    submit(&pro, Locator::Css(&revoke_self)).await;
    let page = text(&pro).await;
    for field in ["rule", "why", "guidance"] {
        let said = refusal[field].as_str().unwrap();
        assert!(
            page.contains(said),
            "the page lacks the CLI's {field} {said:?}: {page}"
        );
    }
    assert!(page.contains("Refused:"), "{page}");
    tick(&pro, Locator::Css("input[name='force']")).await;
    submit(&pro, Locator::Css(&revoke_self)).await;
    let page = text(&pro).await;
    assert!(page.contains("had no one left and is deleted"), "{page}");
    // The Place is gone: the answer led to the Places list (POST,
    // redirect, GET).
    assert_eq!(pro.current_url().await.unwrap().path(), "/");
    pro.goto(base).await.unwrap();
    assert!(!text(&pro).await.contains("empty-loft"));

    // A homeowner is not revocable by others: no button, the reason.
    open_place(&pro, base, "city-flat").await;
    let page = text(&pro).await;
    assert!(page.contains("Not revocable"), "{page}");
    assert!(
        pro.find(Locator::Css(&format!(
            "button[aria-label='Revoke {HOMEOWNER}']"
        )))
        .await
        .is_err()
    );
    assert!(page.contains("No share link can be generated"), "{page}");

    // The homeowner removes the home from their account.
    let home = driver.session().await;
    sign_in(&home, base, data, HOMEOWNER).await;
    open_place(&home, base, "city-flat").await;
    tick(&home, Locator::Id("release-confirm")).await;
    click_button(&home, "Remove Home from Account").await;
    let page = text(&home).await;
    assert!(
        page.contains("Done: Place city-flat has no homeowner now"),
        "{page}"
    );

    for browser in [pro, friend, home] {
        browser.close().await.unwrap();
    }
}

lan_test! {
    fn a_pro_and_a_homeowner_manage_access_in_a_real_browser() {
        // Checked first: without a browser this fails and says what to
        // install.
        browser_binaries();
        let dir = TempDir::new("portal-browser");
        let data = dir.path("cloud");
        {
            let store = CloudStore::open(&data).unwrap();
            fill(&store);
        }
        let refusal = cli_last_person_refusal(&data);
        let store = Arc::new(CloudStore::open(&data).unwrap());
        // Half an hour after the Places were shared: the pro's 30 days
        // read 29d 23h however long the setup took.
        let clock = Clock::default();
        clock.advance(1800);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let portal = RunningPortal::start(
                store,
                PortalOptions {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    tls: WebTls::CloudCa,
                    data_dir: data.clone(),
                    url: None,
                    clock: clock.clone(),
                    metrics: Default::default(),
                    smtp: None,
                },
            )
            .await
            .expect("the portal starts");
            let base = portal.url.clone();
            let outcome = tokio::time::timeout(
                Duration::from_secs(300),
                scenario(&base, &data, &refusal),
            )
            .await;
            portal.stop().await;
            outcome.expect("the browser scenario ends within 5 minutes");
        });
    }
}

lan_test! {
    fn the_demo_kept_serving_signs_the_pro_in_from_a_browser() {
        browser_binaries();
        let port = common::free_port();
        let web = format!("127.0.0.1:{port}");
        let mut demo = Process::new(common::handoff_bin())
            .args(["demo", "--keep", "--web", &web])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(demo.stdout.take().unwrap());
        let mut said = Vec::new();
        let mut link = None;
        for line in stdout.lines() {
            let line = line.unwrap();
            said.push(line.clone());
            if line.trim().starts_with(&format!("https://localhost:{port}/sign-in/")) {
                link = Some(line.trim().to_owned());
            }
            if line.contains("Serving until Ctrl-C") {
                break;
            }
        }
        let link = link.unwrap_or_else(|| panic!("no sign-in link: {said:#?}"));
        assert!(
            said.iter().any(|l| l.contains(&format!("The Places portal: https://localhost:{port}"))),
            "{said:#?}"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let driver = Driver::start();
            let pro = driver.session().await;
            pro.goto(&link).await.unwrap();
            click_button(&pro, "Sign in").await;
            let (lake, _) = row(&pro, "lake-house").await;
            // The takeover shared lake-house for 30 days.
            assert!(lake.contains("Green") && lake.contains("29d 23h"), "{lake}");
            // The pro made harbor-view without remote services: theirs
            // alone, grey.
            let (harbor, colour) = row(&pro, "harbor-view").await;
            assert_eq!(colour, GREY, "{harbor}");
            assert!(harbor.contains("Grey") && harbor.contains("Not in the Places list of anyone else"), "{harbor}");
            pro.close().await.unwrap();
        });
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(demo.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let out = demo.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the demo ends cleanly on Ctrl-C: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

lan_test! {
    /// `handoff inspect --html`'s report, the file an integrator sends the
    /// homeowner, opened in the real browser: every device of the
    /// simulator's house is on the rendered page, with its serial, and the
    /// page runs no script and fetches nothing.
    fn the_inspect_report_renders_in_chromium_with_every_device() {
        let sim = common::Sim::start(&["--count", "1", "--system-type", "ra3", "--auto-press",
            "200ms", "--no-probe"]);
        let state = TempDir::new("inspect-browser");
        let st = state.0.to_str().unwrap().to_owned();
        let p = &sim.manifest[0];
        let ip = p["addresses"][0].as_str().unwrap();
        let identity = common::sim_identity_dir(&sim.state_dir);
        let pair = handoff(&["--state-dir", &st, "pair", ip, "--pairing-identity",
            identity.to_str().unwrap()]);
        assert_eq!(pair.code, Some(0), "{}", pair.stderr);
        let html = state.path("report.html");
        let inspect = handoff(&["--state-dir", &st, "inspect", ip, "--html", html.to_str().unwrap()]);
        assert_eq!(inspect.code, Some(0), "{}", inspect.stderr);
        let devices = p["house"]["devices"].as_array().unwrap();
        assert!(devices.len() > 5, "a house worth reading: {}", devices.len());

        let driver = Driver::start();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let browser = driver.session().await;
            browser.goto(&format!("file://{}", html.display())).await.expect("the report opens");
            let title = browser.title().await.unwrap();
            let project = p["house"]["project"].as_str().unwrap();
            assert!(title.contains(project), "title {title:?}, project {project:?}");
            let shown = text(&browser).await;
            for d in devices {
                let (name, serial) = (d["name"].as_str().unwrap(), d["serial"].to_string());
                assert!(shown.contains(name), "device {name} not shown:\n{shown}");
                assert!(shown.contains(&serial), "serial {serial} of {name} not shown");
            }
            let counted = |script: &'static str| {
                let browser = browser.clone();
                async move { browser.execute(script, vec![]).await.unwrap() }
            };
            assert_eq!(counted("return document.scripts.length").await, json!(0), "no script");
            assert_eq!(
                counted("return performance.getEntriesByType('resource').length").await,
                json!(0),
                "nothing fetched"
            );
            assert_eq!(
                counted("return document.querySelectorAll('link[rel=stylesheet]').length").await,
                json!(0),
                "its style is in the page"
            );
            browser.close().await.unwrap();
        });
    }
}
