//! The Places portal over HTTP, as a browser sees it: who may see what,
//! CSRF, sign-in links, escaping, cookies, redirects. Each test serves a
//! portal in-process on loopback, inside its private network
//! (`lan_test!`), and talks to it with a small HTTP/1.1 client: one
//! request per connection, cookies kept like a browser's.
//!
//! The scenario runs on both store backends (redb, and a throwaway
//! PostgreSQL from `common/postgres.rs`).

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use handoff::cloud::{AccessDuration, AccountId, CloudStore, Command, PlaceId, ProcessorRecord};
use handoff::identity::CertificateAuthority;
use handoff::portal::{Clock, PortalOptions, RunningPortal, WebTls};
use handoff::processor::Serial;

use common::browser::{Browser, Reply};
use common::{TempDir, newest_link};

const PRO: &str = "pro@example.com";
const OTHER: &str = "other@example.com";
const HOMEOWNER: &str = "home@example.com";
const SCRIPT: &str = "<script>alert(1)</script>";

fn create(store: &CloudStore, id: &str, by: &str, processor: Option<ProcessorRecord>) {
    common::create_place(store, id, by, true, processor);
}

fn run(store: &CloudStore, cmd: Command) {
    store.execute(&cmd, handoff::cloud::now()).unwrap().unwrap();
}

/// Places for the scenario: the pro's, another account's, one named with
/// a script, and one with a homeowner.
fn fill(store: &CloudStore) {
    create(store, "p-pro", PRO, None);
    create(store, "p-other", OTHER, None);
    // A share to such an account is refused by the rules (not an email
    // address), but an account name arrives by other roads too (a claim
    // relayed by a site box, a sign-in): the page escapes whatever it is.
    let ca = CertificateAuthority::pairing_authority("processor").unwrap();
    let script_serial = Serial(0x0236_e6a8);
    create(
        store,
        SCRIPT,
        PRO,
        Some(ProcessorRecord {
            place: PlaceId(SCRIPT.into()),
            serial: script_serial,
            mac: [2, 0x4c, 2, 0x36, 0xe6, 0xa8],
            ca_der: ca.certificate_der().to_vec(),
        }),
    );
    run(
        store,
        Command::Claim {
            place: PlaceId(SCRIPT.into()),
            by: AccountId::new(&format!("{SCRIPT}@example.com")),
            processor: script_serial,
            press_verified: true,
        },
    );
    let serial = Serial(0x0236_e6a7);
    create(
        store,
        "p-home",
        PRO,
        Some(ProcessorRecord {
            place: PlaceId("p-home".into()),
            serial,
            mac: [2, 0x4c, 2, 0x36, 0xe6, 0xa7],
            ca_der: ca.certificate_der().to_vec(),
        }),
    );
    run(
        store,
        Command::Claim {
            place: PlaceId("p-home".into()),
            by: AccountId::new(HOMEOWNER),
            processor: serial,
            press_verified: true,
        },
    );
}

async fn start(store: Arc<CloudStore>, data: &Path, tls: WebTls, clock: Clock) -> RunningPortal {
    RunningPortal::start(
        store,
        PortalOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls,
            data_dir: data.to_owned(),
            url: None,
            clock,
            metrics: Default::default(),
            smtp: None,
        },
    )
    .await
    .expect("the portal starts")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Everything but TLS, on one store.
async fn scenario(store: CloudStore, data: &Path) {
    fill(&store);
    let store = Arc::new(store);
    let clock = Clock::default();
    let portal = start(store.clone(), data, WebTls::PlainHttp, clock.clone()).await;
    let addr = portal.local_addr;

    // Without a session, every page and every POST leads to sign-in.
    let mut stranger = Browser::new(addr);
    for path in [
        "/",
        "/places/p-pro",
        "/places/nope",
        "/links/1?place=p-pro&secret=x",
    ] {
        let reply = stranger.get(path).await;
        assert!(reply.redirects_to_sign_in(), "GET {path}: {reply:?}");
    }
    let next = stranger.get("/places/p-pro").await;
    assert_eq!(
        next.header("location"),
        Some("/sign-in?next=%2Fplaces%2Fp-pro")
    );
    for path in [
        "/places/p-pro/share",
        "/places/p-pro/links",
        "/places/p-pro/access/pro%40example.com/revoke",
        "/places/p-pro/release",
        "/links/1/redeem",
    ] {
        let reply = stranger
            .post(
                path,
                &[("csrf", "x"), ("duration", "7d"), ("email", "a@b.c")],
            )
            .await;
        assert!(reply.redirects_to_sign_in(), "POST {path}: {reply:?}");
        // Signing in comes back to the form's page, not to the action
        // (a POST-only URL: a GET of it would be 405).
        let back = if path.starts_with("/links/") {
            "%2Flinks%2F1"
        } else {
            "%2Fplaces%2Fp-pro"
        };
        assert_eq!(
            reply.header("location"),
            Some(format!("/sign-in?next={back}").as_str()),
            "POST {path}"
        );
    }
    // The sign-in form itself wants its CSRF token.
    let forged = Browser::new(addr).post("/sign-in", &[("email", PRO)]).await;
    assert_eq!(forged.status, 403, "{forged:?}");

    // A mail scanner that opens the link signs nobody in; the button does,
    // once.
    let mut pro = Browser::new(addr);
    let form = pro.get("/sign-in").await;
    let csrf = form.csrf();
    pro.post(
        "/sign-in",
        &[("csrf", &csrf), ("email", PRO), ("next", "/")],
    )
    .await;
    let link = newest_link(data, PRO);
    let mut scanner = Browser::new(addr);
    let path = &link[link.find("/sign-in/").unwrap()..];
    let prefetch = scanner.get(path).await;
    assert!(
        !prefetch
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("handoff_session=")),
        "{prefetch:?}"
    );
    let signed = pro.follow_sign_in_link(&link).await;
    assert_eq!(signed.status, 303, "{signed:?}");
    assert_eq!(signed.header("location"), Some("/"));
    let cookie = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("handoff_session="))
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let again = Browser::new(addr).follow_sign_in_link(&link).await;
    assert_eq!(again.status, 410, "a link signs in once: {again:?}");
    assert!(again.body.contains("used already"), "{}", again.body);

    // A redirect parameter never leaves the site.
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let link = handoff::portal::sign_in_link(
            &store,
            &AccountId::new(PRO),
            &portal.url,
            clock.now(),
            900,
        )
        .unwrap();
        let mut b = Browser::new(addr);
        let page = b.get(&link[link.find("/sign-in/").unwrap()..]).await;
        let csrf = page.csrf();
        let action = link[link.find("/sign-in/").unwrap()..].to_owned();
        let reply = b.post(&action, &[("csrf", &csrf), ("next", evil)]).await;
        assert_eq!(reply.header("location"), Some("/"), "{evil}: {reply:?}");
    }

    // The Places list: the pro's Places, not the other account's; names
    // escaped; the same as JSON with the CLI's field names.
    let list = pro.get("/").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("p-pro") && list.body.contains("p-home"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("p-other"), "{}", list.body);
    assert!(!list.body.contains(SCRIPT), "unescaped: {}", list.body);
    assert!(
        list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("Green"),
        "status as a word: {}",
        list.body
    );
    let json = pro.get_json("/").await;
    let places: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["place"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["<script>alert(1)</script>", "p-home", "p-pro"]);
    assert_eq!(json[2]["role"], "pro installer");
    assert!(json[2]["remaining_s"].is_null());

    // Another account's Place, and one that does not exist: the same 404.
    let theirs = pro.get("/places/p-other").await;
    let none = pro.get("/places/p-nothing").await;
    assert_eq!((theirs.status, none.status), (404, 404));
    // The same page but for the nonce each page's forms get.
    let blank = |r: &Reply| r.body.replace(&r.nonce(), "NONCE");
    assert_eq!(blank(&theirs), blank(&none));
    let page = pro.get("/places/p-pro").await;
    let csrf = page.csrf();
    let forged = pro
        .post(
            "/places/p-other/share",
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("duration", "1d"),
            ],
        )
        .await;
    assert_eq!(forged.status, 404);

    // A POST without the session's CSRF token, or with another, is 403
    // and changes nothing; with it, it is applied.
    let share = [("email", "helper@example.com"), ("duration", "7d")];
    let missing = pro.post("/places/p-pro/share", &share).await;
    let wrong = pro
        .post(
            "/places/p-pro/share",
            &[
                share[0],
                share[1],
                ("csrf", "0123456789abcdef0123456789abcdef"),
            ],
        )
        .await;
    assert_eq!((missing.status, wrong.status), (403, 403));
    let helper = AccountId::new("helper@example.com");
    let place = store.place(&PlaceId("p-pro".into())).unwrap().unwrap();
    assert!(
        !place.grants.contains_key(&helper),
        "a forged POST shared the Place"
    );
    let shared = pro
        .submit(
            "/places/p-pro/share",
            &[share[0], share[1], ("csrf", &csrf)],
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    assert!(
        shared
            .body
            .contains("Done: shared Place p-pro with helper@example.com for 7 days"),
        "{}",
        shared.body
    );

    // The helper has 7 days: longer shares are disabled, with the reason.
    // (7 days itself is allowed only within the second the share was
    // made: a clock tick later it is longer than what is left.)
    let mut helper_browser = Browser::new(addr);
    helper_browser.sign_in(data, "helper@example.com").await;
    let helper_page = helper_browser.get("/places/p-pro").await;
    assert!(
        helper_page
            .body
            .contains(r#"<option value="1d">1 day</option>"#),
        "{}",
        helper_page.body
    );
    assert!(
        helper_page.body.contains(
            r#"<option value="30d" disabled>30 days — not available: longer than your own access ("#
        ),
        "{}",
        helper_page.body
    );

    // The account with a script in it is shown escaped in Manage Access.
    let script_page = pro
        .get(&format!("/places/{}", handoff_segment(SCRIPT)))
        .await;
    assert_eq!(script_page.status, 200);
    assert!(
        !script_page.body.contains("<script>"),
        "{}",
        script_page.body
    );
    assert!(
        script_page
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;@example.com")
    );

    // The homeowner: no Revoke button, the reason instead; a forged revoke
    // is refused with the CLI's rule and guidance; no share link.
    let home = pro.get("/places/p-home").await;
    // Its processor was claimed from the store, not relayed: no site box
    // reported anything, and the table says so in every such cell.
    assert_eq!(
        home.body.matches("<td>not reported yet</td>").count(),
        3,
        "{}",
        home.body
    );
    let processor = pro.get_json("/places/p-home").await["processors"][0].clone();
    assert_eq!(processor["id"], "0236e6a7", "{processor}");
    for field in [
        "model",
        "firmware",
        "reported_by",
        "last_site_box",
        "last_contact",
    ] {
        assert!(processor[field].is_null(), "{field}: {processor}");
    }
    assert!(
        home.body
            .contains("Not revocable: home@example.com is this Place&#39;s homeowner")
            || home
                .body
                .contains("Not revocable: home@example.com is this Place's homeowner"),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("/access/home%40example.com/revoke")
            && !home.body.contains("/access/home@example.com/revoke"),
        "{}",
        home.body
    );
    assert!(
        home.body
            .contains("No share link can be generated: this system already has a homeowner"),
        "{}",
        home.body
    );
    let forged = pro
        .submit(
            "/places/p-home/access/home@example.com/revoke",
            &[("csrf", &csrf)],
        )
        .await;
    assert!(forged.body.contains("Refused: "), "{}", forged.body);
    assert!(
        forged
            .body
            .contains("homeowner_cannot_be_revoked_by_others"),
        "{}",
        forged.body
    );
    // The timeline keeps the refusal (newest first): who asked, the rule,
    // no site box (the portal); the claim before it came from the store.
    let timeline = pro.get_json("/places/p-home").await["timeline"].clone();
    assert_eq!(timeline[0]["result"], "refused", "{timeline}");
    assert_eq!(timeline[0]["rule"], "homeowner_cannot_be_revoked_by_others");
    assert_eq!(timeline[0]["account"], PRO);
    assert_eq!(timeline[0]["what"], "revoke home@example.com");
    assert!(timeline[0]["site_box"].is_null());
    assert_eq!(timeline[1]["account"], HOMEOWNER, "{timeline}");
    assert_eq!(timeline[1]["result"], "applied");
    let home = pro.get("/places/p-home").await;
    assert!(
        home.body
            .contains("refused: <code>homeowner_cannot_be_revoked_by_others</code>"),
        "{}",
        home.body
    );

    // POST/redirect/GET: the message shows once; a form sent again (the
    // back button, a resubmitted refresh) does not act again.
    assert!(!home.body.contains("Refused: "), "the flash showed twice");
    let page = pro.get("/places/p-pro").await;
    let nonce = page.nonce();
    let issued = |store: &CloudStore| {
        store
            .place(&PlaceId("p-pro".into()))
            .unwrap()
            .unwrap()
            .links_issued
    };
    let before = issued(&store);
    let form = [
        ("csrf", csrf.as_str()),
        ("duration", "1d"),
        ("form", nonce.as_str()),
    ];
    let first = pro.submit("/places/p-pro/links", &form).await;
    assert!(first.body.contains("generated"), "{}", first.body);
    let again = pro.submit("/places/p-pro/links", &form).await;
    assert!(
        again.body.contains("this form was sent already"),
        "{}",
        again.body
    );
    assert!(!again.body.contains("id=\"new-link\""), "{}", again.body);
    assert_eq!(
        issued(&store),
        before + 1,
        "a form sent twice made two links"
    );
    // A JSON client (no nonce) gets JSON, not a redirect.
    let json = pro
        .send(
            "POST",
            "/places/p-pro/links",
            Some(&[("csrf", &csrf), ("duration", "1d")]),
            true,
        )
        .await;
    assert_eq!(json.status, 200, "{json:?}");
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json["result"], "applied", "{json}");
    assert!(
        json["data"]["link"]
            .as_str()
            .is_some_and(|l| l.contains("/links/")),
        "{json}"
    );
    let refused = pro
        .send(
            "POST",
            "/places/p-home/access/home@example.com/revoke",
            Some(&[("csrf", &csrf)]),
            true,
        )
        .await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(
        refused
            .body
            .contains("homeowner_cannot_be_revoked_by_others"),
        "{}",
        refused.body
    );
    // A nonce the portal could not have made is a bad form, not stored.
    let long = "x".repeat(65);
    let bad = pro
        .post(
            "/places/p-pro/links",
            &[("csrf", &csrf), ("duration", "1d"), ("form", &long)],
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");

    // Share link: generated, redeemed by a second session, revoked.
    let made = pro
        .submit(
            "/places/p-pro/links",
            &[("csrf", &csrf), ("duration", "1d")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let url = made
        .body
        .split("id=\"new-link\" type=\"text\" readonly value=\"")
        .nth(1)
        .unwrap();
    let url = url[..url.find('"').unwrap()].replace("&amp;", "&");
    let mut other = Browser::new(addr);
    other.sign_in(data, OTHER).await;
    let redeem_path = &url[url.find("/links/").unwrap()..];
    let confirm = other.get(redeem_path).await;
    assert!(confirm.body.contains("Redeem link"), "{}", confirm.body);
    assert!(
        !store
            .place(&PlaceId("p-pro".into()))
            .unwrap()
            .unwrap()
            .grants
            .contains_key(&AccountId::new(OTHER)),
        "opening the link redeemed it"
    );
    let number = redeem_path
        .trim_start_matches("/links/")
        .split('?')
        .next()
        .unwrap();
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(redeem_path.split('?').nth(1).unwrap()).unwrap();
    let ocsrf = confirm.csrf();
    let redeemed = other
        .submit(
            &format!("/links/{number}/redeem"),
            &[
                ("csrf", &ocsrf),
                ("place", &query["place"]),
                ("secret", &query["secret"]),
            ],
        )
        .await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    assert!(redeemed.body.contains("you now have access to Place p-pro"));
    let revoked = pro
        .submit(
            "/places/p-pro/access/other%40example.com/revoke",
            &[("csrf", &csrf)],
        )
        .await;
    assert!(
        revoked.body.contains("revoked other@example.com"),
        "{}",
        revoked.body
    );
    assert_eq!(other.get("/places/p-pro").await.status, 404);

    // The last person, no processor: asked twice.
    create(&store, "p-alone", PRO, None);
    let alone = pro.get("/places/p-alone").await;
    assert!(
        alone
            .body
            .contains("Yes, delete the Place: it cannot be recovered"),
        "{}",
        alone.body
    );
    let once = pro
        .submit(
            "/places/p-alone/access/pro%40example.com/revoke",
            &[("csrf", &csrf)],
        )
        .await;
    assert!(once.body.contains("Refused: "), "{}", once.body);
    assert!(
        once.body
            .contains("last_person_cannot_revoke_self_without_force"),
        "{}",
        once.body
    );
    let twice = pro
        .submit(
            "/places/p-alone/access/pro%40example.com/revoke",
            &[("csrf", &csrf), ("force", "yes")],
        )
        .await;
    assert!(
        twice.body.contains("had no one left and is deleted"),
        "{}",
        twice.body
    );
    assert!(store.place(&PlaceId("p-alone".into())).unwrap().is_none());

    // Signed out, the old cookie opens nothing.
    let old = pro.cookies.clone();
    let out = pro.post("/sign-out", &[("csrf", &csrf)]).await;
    assert!(out.redirects_to_sign_in(), "{out:?}");
    pro.cookies = old;
    assert!(pro.get("/").await.redirects_to_sign_in());

    // Sign-in requests are limited per address.
    let mut flood = Browser::new(addr);
    let csrf = flood.get("/sign-in").await.csrf();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            flood
                .post(
                    "/sign-in",
                    &[("csrf", &csrf), ("email", "flood@example.com")],
                )
                .await
                .status,
        );
    }
    assert_eq!(statuses, [303, 303, 303, 303, 303, 429]);
    // Last, since it moves the portal's clock ahead of the database's
    // (PostgreSQL decides the rules' time by its own clock).
    // A link after its 15 minutes is refused.
    let late = handoff::portal::sign_in_link(
        &store,
        &AccountId::new(PRO),
        &portal.url,
        clock.now(),
        15 * 60,
    )
    .unwrap();
    clock.advance(15 * 60);
    let expired = Browser::new(addr).follow_sign_in_link(&late).await;
    assert_eq!(expired.status, 410, "{expired:?}");
    assert!(expired.body.contains("expired"), "{}", expired.body);

    portal.stop().await;
}

fn handoff_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

lan_test! {
    fn portal_security_on_redb() {
        let dir = TempDir::new("portal");
        let data = dir.path("data");
        let store = CloudStore::open(&data).unwrap();
        runtime().block_on(scenario(store, &data));
    }
}

lan_test! {
    fn portal_security_on_postgres() {
        let dir = TempDir::new("portal-pg");
        let data = dir.path("data");
        let url = common::postgres::fresh_database(common::migrate);
        let store = CloudStore::open_chosen(&data, Some(&url)).unwrap();
        runtime().block_on(scenario(store, &data));
    }
}

lan_test! {
    /// HTTPS with the cloud CA's certificate for localhost: the session
    /// cookie is Secure too. Plain HTTP off loopback is refused.
    fn portal_https_and_cookie_flags() {
        let dir = TempDir::new("portal-tls");
        let data = dir.path("data");
        let store = CloudStore::open(&data).unwrap();
        create(&store, "p-pro", PRO, None);
        runtime().block_on(async {
            let store = Arc::new(store);
            let off_loopback = RunningPortal::start(store.clone(), PortalOptions {
                listen: "10.0.0.1:8443".parse().unwrap(),
                tls: WebTls::PlainHttp,
                data_dir: data.clone(),
                url: None,
                clock: Clock::default(),
                metrics: Default::default(),
                smtp: None,
            }).await;
            assert!(matches!(off_loopback, Err(handoff::portal::PortalError::PlainHttpNotLoopback(_))));
            let portal = start(store.clone(), &data, WebTls::CloudCa, Clock::default()).await;
            assert!(portal.url.starts_with("https://localhost:"), "{}", portal.url);
            let ca = std::fs::read(data.join("ca/ca.pem")).unwrap();
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
                roots.add(cert.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(handoff::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let mut pro = Browser::new(portal.local_addr);
            pro.tls = Some(Arc::new(config));
            let link = handoff::portal::sign_in_link(&store, &AccountId::new(PRO), &portal.url, handoff::cloud::now(), 900).unwrap();
            let signed = pro.follow_sign_in_link(&link).await;
            let cookie = signed.set_cookies().into_iter().find(|c| c.starts_with("handoff_session=")).unwrap().to_owned();
            for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
                assert!(cookie.contains(flag), "{flag}: {cookie}");
            }
            let page = pro.get("/").await;
            assert_eq!(page.status, 200);
            assert!(page.body.contains("p-pro"));
            assert!(page.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));
            portal.stop().await;
        });
    }
}

lan_test! {
    fn the_places_list_is_paged_a_hundred_rows_a_page() {
        let dir = TempDir::new("portal-pages");
        let data = dir.path("data");
        let store = CloudStore::open(&data).unwrap();
        for n in 0..250 {
            create(&store, &format!("place-{n:03}"), PRO, None);
        }
        create(&store, "theirs", OTHER, None);
        // 1 creation + 229 shares: a timeline of 230 events.
        for n in 0..229 {
            run(&store, Command::ShareAccess {
                place: PlaceId("place-000".into()),
                by: AccountId::new(PRO),
                email: AccountId::new(&format!("h{n:03}@example.com")),
                duration: AccessDuration::OneDay,
            });
        }
        runtime().block_on(async {
            let portal = start(Arc::new(store), &data, WebTls::PlainHttp, Clock::default()).await;
            let mut pro = Browser::new(portal.local_addr);
            pro.sign_in(&data, PRO).await;
            let rows = |page: &Reply| page.body.matches("<a href=\"/places/").count();
            let first = pro.get("/").await;
            assert_eq!(rows(&first), 100);
            assert!(first.body.contains("Page 1 of 3 (250 Places)"), "{}", first.body);
            assert!(first.body.contains(r#"<a href="/?page=2" rel="next">"#));
            assert!(!first.body.contains("rel=\"prev\""));
            // 100 rows stay well under the 100 KB a page may weigh.
            assert!(first.body.len() < 100_000, "{} bytes", first.body.len());
            let last = pro.get("/?page=3").await;
            assert_eq!(rows(&last), 50);
            assert!(last.body.contains("place-249") && !last.body.contains("place-199"));
            assert!(last.body.contains(r#"<a href="/?page=2" rel="prev">"#));
            assert!(!last.body.contains("rel=\"next\""));
            let past = pro.get("/?page=9").await;
            assert_eq!((past.status, rows(&past)), (200, 0));
            assert!(past.body.contains("past the last of your 250 Places"), "{}", past.body);
            for bad in ["0", "-1", "two", ""] {
                let reply = pro.get(&format!("/?page={bad}")).await;
                assert_eq!(reply.status, 400, "page={bad}: {}", reply.body);
            }
            // The JSON is the whole list, as the CLI's.
            let json = pro.get_json("/?page=2").await;
            assert_eq!(json.as_array().unwrap().len(), 250);

            // The timeline is paged too, newest first, beyond its newest 100.
            let events = |page: &Reply| page.body.matches("<td>operator or portal</td>").count();
            let newest = pro.get("/places/place-000").await;
            assert_eq!(events(&newest), 100);
            assert!(newest.body.contains("Events 1–100 of 230, newest first."), "{}", newest.body);
            assert!(newest.body.contains("share with h228@example.com"), "{}", newest.body);
            assert!(newest.body.contains(r##"<a href="/places/place-000?timeline_page=2#timeline" rel="next">"##), "{}", newest.body);
            let oldest = pro.get("/places/place-000?timeline_page=3").await;
            assert_eq!(events(&oldest), 30);
            assert!(oldest.body.contains("Events 201–230 of 230"), "{}", oldest.body);
            assert!(oldest.body.contains("share with h000@example.com"), "{}", oldest.body);
            let timeline = &oldest.body[oldest.body.find("id=\"timeline\"").unwrap()..];
            assert!(!timeline.contains("h100@example.com"), "{timeline}");
            assert!(!oldest.body.contains("rel=\"next\""));
            let json = pro.get_json("/places/place-000?timeline_page=2").await;
            assert_eq!(json["timeline"].as_array().unwrap().len(), 100);
            assert_eq!(json["timeline_total"], 230);
            assert!(json["timeline"][0]["what"].as_str().unwrap().contains("h128@"), "{json}");
            let past = pro.get("/places/place-000?timeline_page=4").await;
            assert!(past.body.contains("past the oldest of the Place&#39;s 230 events") || past.body.contains("past the oldest of the Place's 230 events"), "{}", past.body);
            for bad in ["0", "-1", "two"] {
                let reply = pro.get(&format!("/places/place-000?timeline_page={bad}")).await;
                assert_eq!(reply.status, 400, "timeline_page={bad}: {}", reply.body);
            }
            portal.stop().await;
        });
    }
}

const GREY: &str = "p-grey";

/// Everything the store holds, as bytes to search: the redb file, or
/// every row of every table of the database (`url`) as text.
fn store_bytes(store: &CloudStore, url: Option<&str>) -> Vec<u8> {
    match (store.path(), url) {
        (Some(path), _) => std::fs::read(path).unwrap(),
        (None, Some(url)) => {
            let c = common::postgres::cluster(common::migrate);
            let db = common::postgres::database_name(url);
            let tables = c.psql_in(
                db,
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            );
            tables
                .lines()
                .filter(|t| !t.is_empty())
                .map(|table| c.psql_in(db, &format!("SELECT t::text FROM {table} t")))
                .collect::<String>()
                .into_bytes()
        }
        (None, None) => unreachable!("a database has a URL"),
    }
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A grey Place (created by the pro with remote services off): only its
/// creator sees it, grey, and enables remote services in two steps; never
/// a disable control; everyone else gets 404 before and after. Then the
/// share link of Generate New Link: between the POST and the page its
/// redirect leads to, no byte of the store holds the link's secret.
async fn grey_scenario(store: CloudStore, data: &Path, url: Option<&str>) {
    create(&store, "p-pro", PRO, None);
    let ca = CertificateAuthority::pairing_authority("processor").unwrap();
    common::create_place(
        &store,
        GREY,
        PRO,
        false,
        Some(ProcessorRecord {
            place: PlaceId(GREY.into()),
            serial: Serial(0x0236_e6b1),
            mac: [2, 0x4c, 2, 0x36, 0xe6, 0xb1],
            ca_der: ca.certificate_der().to_vec(),
        }),
    );
    let store = Arc::new(store);
    let portal = start(store.clone(), data, WebTls::PlainHttp, Clock::default()).await;
    let addr = portal.local_addr;
    let mut pro = Browser::new(addr);
    pro.sign_in(data, PRO).await;
    let mut other = Browser::new(addr);
    other.sign_in(data, OTHER).await;
    let page = format!("/places/{GREY}");
    let action = format!("{page}/remote-services");

    // The list: grey, icon and word and the vendor's sentence, marked as
    // nobody else's; in JSON too.
    let list = pro.get("/").await;
    let row = &list.body[list
        .body
        .find(&format!("<a href=\"{page}\">"))
        .expect("the grey Place is listed for its creator")..];
    let row = &row[..row.find("</tr>").unwrap()];
    for text in [
        "status grey",
        "Grey",
        "remote services are disabled",
        "Not in the Places list of anyone else until remote services are enabled",
        "creator (no access",
    ] {
        assert!(row.contains(text), "{text}: {row}");
    }
    let json = pro.get_json("/").await;
    let grey = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["place"] == GREY)
        .expect("in the JSON list")
        .clone();
    assert_eq!(
        (
            grey["status"].as_str(),
            grey["role"].as_str(),
            grey["waiting_for_remote_services"].as_bool()
        ),
        (Some("grey"), Some("creator"), Some(true)),
        "{grey}"
    );
    assert!(grey["remaining_s"].is_null(), "{grey}");

    // Anyone else: not in their list, 404 for the page and every POST.
    let theirs = other.get("/").await;
    assert!(!theirs.body.contains(GREY), "{}", theirs.body);
    assert_eq!(other.get(&page).await.status, 404);
    let ocsrf = theirs.csrf();
    for (path, form) in [
        (
            action.clone(),
            vec![
                ("csrf", ocsrf.as_str()),
                ("remote_services", "enabled"),
                ("confirm", "yes"),
            ],
        ),
        (
            action.clone(),
            vec![("csrf", ocsrf.as_str()), ("remote_services", "enabled")],
        ),
        (
            format!("{page}/share"),
            vec![
                ("csrf", ocsrf.as_str()),
                ("email", "x@example.com"),
                ("duration", "1d"),
            ],
        ),
        (
            format!("{page}/links"),
            vec![("csrf", ocsrf.as_str()), ("duration", "1d")],
        ),
        (
            format!("{page}/access/pro%40example.com/revoke"),
            vec![("csrf", ocsrf.as_str())],
        ),
        (
            format!("{page}/release"),
            vec![("csrf", ocsrf.as_str()), ("confirm", "yes")],
        ),
    ] {
        let reply = other.post(&path, &form).await;
        assert_eq!(reply.status, 404, "POST {path}: {reply:?}");
    }
    assert!(
        !store
            .place(&PlaceId(GREY.into()))
            .unwrap()
            .unwrap()
            .remote_services
    );

    // The creator's page: processors, support line, Enable; nothing else.
    let shown = pro.get(&page).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    for text in [
        "Enable remote services",
        "Grey",
        "Not in the Places list of anyone else",
        "serial",
        "02:4c:02:36:e6:b1",
        "Line for support",
    ] {
        assert!(
            shown.body.to_lowercase().contains(&text.to_lowercase()),
            "{text}: {}",
            shown.body
        );
    }
    for absent in [
        "Manage Access",
        "Share Access",
        "Generate New Link",
        "Timeline",
        "Revoke",
        "Remove Home",
    ] {
        assert!(!shown.body.contains(absent), "{absent}: {}", shown.body);
    }
    let csrf = shown.csrf();
    // Its other controls are refused by the rules, by name.
    let refused = pro
        .submit(
            &format!("{page}/share"),
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("duration", "1d"),
            ],
        )
        .await;
    assert!(
        refused
            .body
            .contains("no_place_operation_without_remote_services"),
        "{}",
        refused.body
    );
    // A forged request to turn them off: refused by name, in HTML and JSON.
    let off = pro
        .submit(
            &action,
            &[
                ("csrf", &csrf),
                ("remote_services", "disabled"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert!(
        off.body.contains("remote_services_cannot_be_disabled"),
        "{}",
        off.body
    );
    let off = pro
        .send(
            "POST",
            &action,
            Some(&[("csrf", &csrf), ("remote_services", "off")]),
            true,
        )
        .await;
    assert_eq!(off.status, 409, "{off:?}");
    assert!(
        off.body
            .contains("\"rule\":\"remote_services_cannot_be_disabled\""),
        "{}",
        off.body
    );
    // No field at all, or a typo: a bad form, not a request to disable.
    assert_eq!(pro.post(&action, &[("csrf", &csrf)]).await.status, 400);
    let typo = pro
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("remote_services", "enable"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(typo.status, 400, "{typo:?}");
    assert!(typo.body.contains("never off"), "{}", typo.body);

    // Step one: the confirmation page, nothing enabled yet.
    let shown = pro.get(&page).await;
    let step_one = pro
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("form", &shown.nonce()),
                ("remote_services", "enabled"),
            ],
        )
        .await;
    assert_eq!(step_one.status, 200, "{step_one:?}");
    assert!(
        step_one.body.contains("This cannot be undone."),
        "{}",
        step_one.body
    );
    assert!(
        step_one.body.contains("the designer greys the option out"),
        "{}",
        step_one.body
    );
    assert!(
        step_one.body.contains("name=\"confirm\" value=\"yes\""),
        "{}",
        step_one.body
    );
    assert!(
        !store
            .place(&PlaceId(GREY.into()))
            .unwrap()
            .unwrap()
            .remote_services,
        "step one enabled"
    );
    let json = pro
        .send(
            "POST",
            &action,
            Some(&[("csrf", &csrf), ("remote_services", "enabled")]),
            true,
        )
        .await;
    assert_eq!(json.status, 400, "{json:?}");
    assert!(json.body.contains("needs_confirmation"), "{}", json.body);
    assert!(
        !store
            .place(&PlaceId(GREY.into()))
            .unwrap()
            .unwrap()
            .remote_services
    );

    // Step two, with the confirmation page's own token and nonce.
    let second = [
        ("csrf", step_one.csrf()),
        ("form", step_one.nonce()),
        ("remote_services", "enabled".to_owned()),
        ("confirm", "yes".to_owned()),
    ];
    let second: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let green = pro.submit(&action, &second).await;
    assert_eq!(green.status, 200, "{}", green.body);
    assert!(
        green
            .body
            .contains("remote services are on for Place p-grey"),
        "{}",
        green.body
    );
    assert!(green.body.contains("status green"), "{}", green.body);
    assert!(
        green.body.contains("Manage Access") && green.body.contains("created the Place"),
        "{}",
        green.body
    );
    assert!(
        store
            .place(&PlaceId(GREY.into()))
            .unwrap()
            .unwrap()
            .remote_services
    );
    // Never a control to turn them off: no form posts to the action.
    assert!(!green.body.contains("/remote-services\""), "{}", green.body);
    assert!(
        !green.body.to_lowercase().contains("disable remote"),
        "{}",
        green.body
    );
    // The same confirmation sent again acts once; enabling again by JSON
    // is a no-op, not an error.
    let again = pro.submit(&action, &second).await;
    assert!(
        again.body.contains("this form was sent already"),
        "{}",
        again.body
    );
    let json = pro
        .send(
            "POST",
            &action,
            Some(&[
                ("csrf", &csrf),
                ("remote_services", "enabled"),
                ("confirm", "yes"),
            ]),
            true,
        )
        .await;
    assert_eq!(json.status, 200, "{json:?}");
    assert!(json.body.contains("were on already"), "{}", json.body);
    let json = pro.get_json(&page).await;
    assert_eq!(json["status"], "green", "{json}");
    assert_eq!(json["remote_services"], true, "{json}");
    // Nobody else got anything: still 404, still not listed.
    assert_eq!(other.get(&page).await.status, 404);
    assert!(!other.get("/").await.body.contains(GREY));
    let forged = other
        .post(
            &action,
            &[("csrf", &ocsrf), ("remote_services", "disabled")],
        )
        .await;
    assert_eq!(forged.status, 404, "{forged:?}");

    // Generate New Link: the 303 is answered, its page not yet fetched;
    // the secret the page then shows is in no byte of the store.
    let shown = pro.get("/places/p-pro").await;
    let posted = pro
        .post(
            "/places/p-pro/links",
            &[
                ("csrf", &shown.csrf()),
                ("form", &shown.nonce()),
                ("duration", "1d"),
            ],
        )
        .await;
    assert_eq!(posted.status, 303, "{posted:?}");
    let held = store_bytes(&store, url);
    let made = pro.get(posted.header("location").unwrap()).await;
    let link = made
        .body
        .split("id=\"new-link\" type=\"text\" readonly value=\"")
        .nth(1)
        .expect("the new link, shown once");
    let link = link[..link.find('"').unwrap()].replace("&amp;", "&");
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(link.split('?').nth(1).unwrap()).unwrap();
    let secret = &query["secret"];
    assert_eq!(secret.len(), 32, "{link}");
    assert!(
        !holds(&held, secret.as_bytes()),
        "the link's secret is in the store"
    );
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        !holds(&held, &raw),
        "the link's secret (raw) is in the store"
    );
    assert!(!holds(&held, link.as_bytes()));
    // Shown once.
    assert!(
        !pro.get("/places/p-pro")
            .await
            .body
            .contains(secret.as_str())
    );
    portal.stop().await;
}

lan_test! {
    fn a_grey_place_is_its_creators_alone_until_enabled_on_redb() {
        let dir = TempDir::new("portal-grey");
        let data = dir.path("data");
        let store = CloudStore::open(&data).unwrap();
        runtime().block_on(grey_scenario(store, &data, None));
    }
}

lan_test! {
    fn a_grey_place_is_its_creators_alone_until_enabled_on_postgres() {
        let dir = TempDir::new("portal-grey-pg");
        let data = dir.path("data");
        let url = common::postgres::fresh_database(common::migrate);
        let store = CloudStore::open_chosen(&data, Some(&url)).unwrap();
        runtime().block_on(grey_scenario(store, &data, Some(&url)));
    }
}

lan_test! {
    /// A form whose action failed in the store (a 500) is not "sent
    /// already": its nonce is kept in the action's transaction. Once with
    /// PostgreSQL stopped between loading the form and sending it, once
    /// with the timeline's table gone (the session, the Place and the
    /// nonce can be read and written, the action cannot: its event is not
    /// recorded). Only the second tells a nonce kept in a transaction of
    /// its own from one kept with the action: with PostgreSQL down the
    /// session cannot be read either.
    fn a_form_whose_action_failed_in_the_store_can_be_sent_again_and_acts_once() {
        let pg = common::postgres::Private::on_socket(common::migrate);
        let url = pg.cluster.fresh_database();
        let db = common::postgres::database_name(&url).to_owned();
        let dir = TempDir::new("portal-pg-down");
        let data = dir.path("data");
        let store = CloudStore::open_chosen(&data, Some(&url)).unwrap();
        create(&store, "p-pro", PRO, None);
        let store = Arc::new(store);
        let grants = |store: &CloudStore| store.place(&PlaceId("p-pro".into())).unwrap().unwrap().grants.len();
        runtime().block_on(async {
            let portal = start(store.clone(), &data, WebTls::PlainHttp, Clock::default()).await;
            let mut pro = Browser::new(portal.local_addr);
            pro.sign_in(&data, PRO).await;
            for (n, (break_it, mend)) in [
                (Box::new(|| pg.stop_immediate()) as Box<dyn Fn()>, Box::new(|| pg.start_again()) as Box<dyn Fn()>),
                (Box::new(|| { pg.cluster.psql_in(&db, "ALTER TABLE place_events RENAME TO place_events_away"); }), Box::new(|| { pg.cluster.psql_in(&db, "ALTER TABLE place_events_away RENAME TO place_events"); })),
            ].into_iter().enumerate() {
                let email = format!("pro{n}@example.com");
                let shown = pro.get("/places/p-pro").await;
                let form = [("csrf", shown.csrf()), ("form", shown.nonce()), ("email", email.clone()), ("duration", "1d".to_owned())];
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let before = grants(&store);
                break_it();
                let failed = pro.post("/places/p-pro/share", &form).await;
                assert_eq!(failed.status, 500, "{n}: {failed:?}");
                mend();
                // The pool's connections died with the server: the first
                // use of a dead one may fail; the store is up again when a
                // read succeeds.
                let mut up = false;
                for _ in 0..100 {
                    if store.place(&PlaceId("p-pro".into())).is_ok() {
                        up = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert!(up, "{n}: the store did not come back");
                assert_eq!(grants(&store), before, "{n}: the failed form did something");
                let done = pro.submit("/places/p-pro/share", &form).await;
                assert!(done.body.contains(&format!("shared Place p-pro with {email}")), "{n}: {}", done.body);
                assert_eq!(grants(&store), before + 1, "{n}");
                let again = pro.submit("/places/p-pro/share", &form).await;
                assert!(again.body.contains("this form was sent already"), "{n}: {}", again.body);
                assert_eq!(grants(&store), before + 1, "{n}: acted twice");
            }
            portal.stop().await;
        });
    }
}
