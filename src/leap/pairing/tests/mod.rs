//! Both machines against each other, in memory, on a fake clock: every
//! edge of the handshake runs in microseconds, deterministically.

mod harness;

use std::time::Duration;

use harness::{CODEC, PROCESSOR, Pair, Signer, signed_for, signing_result};

use super::*;
use crate::leap::message::{CsrParameters, PairingFrame, StatusCode};

#[test]
fn happy_path_pairs_after_the_button_press() {
    let mut pair = Pair::new();
    let conn = pair.connect();
    pair.advance_to(Duration::from_secs(42));
    pair.press();
    assert_eq!(
        pair.outcome(conn),
        Some(&Ok(SignedCertificate {
            certificate: "CERT for handoff".into(),
            root_certificate: "ROOT".into()
        }))
    );
    assert_eq!(
        pair.received(conn),
        [PairingFrame::physical_access(), signing_result("get-cert")]
    );
    assert_eq!(pair.links[&conn].closed, Some(CloseReason::Paired));
    assert!(pair.events.contains(&ServerEvent::Paired {
        conn,
        display_name: "handoff".into()
    }));
    assert_eq!(pair.server.in_flight(), None);
}

#[test]
fn processor_sends_nothing_before_the_button_press() {
    let mut pair = Pair::new();
    let conn = pair.connect();
    pair.advance_to(Duration::from_secs(179));
    assert!(pair.received(conn).is_empty());
    assert!(pair.links[&conn].to_client.is_empty());
    assert_eq!(pair.outcome(conn), None);
}

#[test]
fn press_sends_exactly_the_physical_access_frame() {
    let mut pair = Pair::new();
    pair.signer = Signer::Hold;
    let conn = pair.connect();
    pair.press();
    assert_eq!(pair.received(conn), [PairingFrame::physical_access()]);
}

#[test]
fn client_times_out_exactly_at_its_button_deadline() {
    let mut pair = Pair::new();
    let conn = pair.connect();
    let deadline = pair.start + DEFAULT_BUTTON_WINDOW;
    assert_eq!(
        pair.links[&conn].client.as_ref().unwrap().poll_timeout(),
        Some(deadline)
    );
    pair.advance_to(DEFAULT_BUTTON_WINDOW - Duration::from_nanos(1));
    assert_eq!(pair.outcome(conn), None);
    pair.advance_to(DEFAULT_BUTTON_WINDOW);
    let err = pair.error(conn);
    assert_eq!(
        err,
        PairingError::ButtonNotPressed {
            processor: PROCESSOR.into(),
            waited: DEFAULT_BUTTON_WINDOW
        }
    );
    assert_eq!(
        err.to_string(),
        "nobody pressed the button on RadioRA 3 processor 0236e6a7 at 192.168.1.20 within \
         3:00 — press the small button on the processor and run the command again"
    );
}

#[test]
fn csr_before_button_press_gets_401() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.send_csr_raw(conn);
    assert_eq!(
        pair.received(conn),
        [PairingFrame::unauthorized(Some("get-cert".into()))]
    );
    assert!(pair.links[&conn].closed.is_none(), "the client may wait on");
    // The press still reaches it afterwards.
    pair.press();
    assert_eq!(
        pair.received(conn).last(),
        Some(&PairingFrame::physical_access())
    );
}

#[test]
fn second_client_is_refused_while_one_pairs() {
    let mut pair = Pair::new();
    pair.signer = Signer::Hold;
    let first = pair.connect();
    pair.press();
    let second = pair.connect();
    assert_eq!(
        pair.links[&second].closed,
        Some(CloseReason::AnotherPairingInFlight)
    );
    assert!(pair.received(second).is_empty());
    let err = pair.error(second);
    assert!(matches!(
        err,
        PairingError::ProcessorClosed {
            stage: Stage::AwaitingButton,
            ..
        }
    ));
    assert!(
        err.to_string().contains("another client may be pairing"),
        "{err}"
    );
    // The first one is not disturbed.
    pair.finish_signing(Ok(signed_for(&CsrParameters::admin("", "handoff"))));
    assert!(matches!(pair.outcome(first), Some(Ok(_))));
    // Once it is done, the window (still open) serves the next one.
    let third = pair.connect();
    assert_eq!(pair.received(third), [PairingFrame::physical_access()]);
}

#[test]
fn press_goes_to_the_first_waiting_client_and_refuses_the_rest() {
    let mut pair = Pair::new();
    let first = pair.connect();
    let second = pair.connect();
    pair.press();
    assert!(matches!(pair.outcome(first), Some(Ok(_))));
    assert_eq!(
        pair.links[&second].closed,
        Some(CloseReason::AnotherPairingInFlight)
    );
    assert!(pair.received(second).is_empty());
}

#[test]
fn client_connecting_during_an_open_window_is_granted_at_once() {
    let mut pair = Pair::new();
    pair.press();
    pair.advance_to(Duration::from_secs(100));
    let conn = pair.connect();
    assert!(matches!(pair.outcome(conn), Some(Ok(_))));
}

#[test]
fn twenty_failures_close_the_window() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    for n in 1..MAX_FAILED_ATTEMPTS {
        pair.send_raw(
            conn,
            b"{\"Header\":{\"RequestType\":\"Execute\",\"Url\":\"/pair\"}}\r\n",
        );
        assert_eq!(pair.server.failures(), n);
        assert!(pair.server.window_closes_at().is_some(), "open after {n}");
    }
    pair.send_raw(conn, b"not json\n");
    assert_eq!(pair.server.window_closes_at(), None);
    assert!(
        pair.events
            .contains(&ServerEvent::WindowClosed(WindowClosed::TooManyFailures))
    );
    // Even a good CSR is now unauthorised.
    pair.send_csr_raw(conn);
    assert_eq!(
        pair.received(conn).last(),
        Some(&PairingFrame::unauthorized(Some("get-cert".into())))
    );
}

#[test]
fn signer_refusals_count_as_failures_and_reach_the_client() {
    let mut pair = Pair::new();
    pair.signer = Signer::Refuse;
    let conn = pair.connect();
    pair.press();
    let err = pair.error(conn);
    match &err {
        PairingError::Refused {
            status, message, ..
        } => {
            assert_eq!(*status, StatusCode::BAD_REQUEST);
            assert!(message.contains("RSA-1024 keys are too weak"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.server.failures(), 1);
}

#[test]
fn window_expires_after_180_seconds() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.start + DEFAULT_BUTTON_WINDOW)
    );
    pair.advance_to(DEFAULT_BUTTON_WINDOW - Duration::from_nanos(1));
    assert!(pair.server.window_closes_at().is_some());
    pair.advance_to(DEFAULT_BUTTON_WINDOW);
    assert_eq!(pair.server.window_closes_at(), None);
    assert_eq!(
        pair.events.last(),
        Some(&ServerEvent::WindowClosed(WindowClosed::Expired))
    );
    // Granted but silent until then: its late CSR is unauthorised.
    pair.send_csr_raw(conn);
    assert_eq!(
        pair.received(conn),
        [
            PairingFrame::physical_access(),
            PairingFrame::unauthorized(Some("get-cert".into()))
        ]
    );
    // And a newcomer waits for a new press.
    let late = pair.connect();
    assert!(pair.received(late).is_empty());
}

#[test]
fn window_expiry_applies_even_if_the_timer_fires_late() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    // No handle_timeout call: the CSR itself arrives after the window.
    pair.now = pair.start + DEFAULT_BUTTON_WINDOW + Duration::from_secs(1);
    pair.send_csr_raw(conn);
    assert_eq!(
        pair.received(conn).last(),
        Some(&PairingFrame::unauthorized(Some("get-cert".into())))
    );
}

#[test]
fn garbage_lines_get_400_and_count_as_failures() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    pair.send_raw(conn, b"GET / HTTP/1.1\r\n");
    pair.send_raw(conn, b"[\"an\",\"array\"]\n");
    pair.send_raw(conn, b"{\"Header\":\"\xff\"}\n");
    pair.send_raw(conn, b"\r\n"); // blank: ignored
    let frames = pair.received(conn);
    assert_eq!(frames.len(), 4, "{frames:?}");
    for frame in &frames[1..] {
        assert!(
            matches!(frame, PairingFrame::Exception { status_code, .. } if status_code.code() == 400),
            "{frame:?}"
        );
    }
    assert_eq!(pair.server.failures(), 3);
    assert!(pair.links[&conn].closed.is_none());
}

#[test]
fn oversized_line_closes_the_connection() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    pair.send_raw(conn, &vec![b'{'; CODEC.max_line() + 2]);
    assert_eq!(
        pair.links[&conn].closed,
        Some(CloseReason::UnreadableStream)
    );
    assert_eq!(pair.server.failures(), 1);
    assert_eq!(pair.server.in_flight(), None, "the slot is free again");
}

#[test]
fn processor_vanishing_mid_handshake_gives_a_clear_error() {
    let mut pair = Pair::new();
    pair.signer = Signer::Hold;
    let conn = pair.connect();
    pair.press();
    pair.processor_vanishes(conn, b"");
    let err = pair.error(conn);
    assert_eq!(
        err.to_string(),
        "RadioRA 3 processor 0236e6a7 at 192.168.1.20 closed the connection after the button \
         press, before sending the certificate — it may have restarted; press the button and \
         run the command again"
    );
}

#[test]
fn processor_vanishing_mid_line_says_so() {
    let mut pair = Pair::new();
    let conn = pair.connect();
    pair.processor_vanishes(conn, b"{\"Header\":{\"Sta");
    let err = pair.error(conn);
    assert_eq!(
        err,
        PairingError::ProcessorClosed {
            processor: PROCESSOR.into(),
            stage: Stage::AwaitingButton,
            how: Disconnect::MidFrame
        }
    );
    assert!(
        err.to_string().contains("in the middle of a message"),
        "{err}"
    );
}

#[test]
fn client_leaving_mid_signing_frees_the_processor() {
    let mut pair = Pair::new();
    pair.signer = Signer::Hold;
    let gone = pair.connect();
    pair.press();
    let actions = pair.server.handle_close(pair.now, gone);
    assert!(actions.is_empty());
    let next = pair.connect();
    assert_eq!(pair.received(next), [PairingFrame::physical_access()]);
    // The late signature for the departed client is dropped.
    let actions = pair.server.signing_done(
        pair.now,
        gone,
        Ok(signed_for(&CsrParameters::admin("", ""))),
    );
    assert!(actions.is_empty(), "{actions:?}");
}

#[test]
fn press_during_a_window_restarts_it_with_a_fresh_failure_count() {
    let mut pair = Pair::new();
    let conn = pair.connect_raw();
    pair.press();
    pair.send_raw(conn, b"nonsense\n");
    assert_eq!(pair.server.failures(), 1);
    pair.advance_to(Duration::from_secs(100));
    pair.press();
    assert_eq!(pair.server.failures(), 0);
    assert_eq!(
        pair.server.window_closes_at(),
        Some(pair.start + Duration::from_secs(100) + DEFAULT_BUTTON_WINDOW)
    );
    // Already granted: the second press sends nothing more.
    assert_eq!(pair.received(conn).len(), 2, "{:?}", pair.received(conn));
}

#[test]
fn csr_accepted_in_the_window_is_answered_after_it_closes() {
    let mut pair = Pair::new();
    pair.signer = Signer::Hold;
    pair.press();
    pair.advance_to(DEFAULT_BUTTON_WINDOW - Duration::from_secs(5));
    let conn = pair.connect();
    // The signer takes 7 s; the client waits 10 s; the window closes.
    pair.advance_to(DEFAULT_BUTTON_WINDOW + Duration::from_secs(2));
    assert_eq!(pair.server.window_closes_at(), None);
    assert_eq!(pair.server.in_flight(), Some(conn));
    pair.finish_signing(Ok(signed_for(&CsrParameters::admin("", "handoff"))));
    assert!(matches!(pair.outcome(conn), Some(Ok(_))));
}
