//! What must hold of every answer, whichever target produced it: a refusal
//! names its fields and quotes no personal data, and an accepted event is
//! stored in a form that validates back to itself.

use lapor_shared::domain::Event;
use lapor_shared::proto::convert::{Violations, event_from_proto, event_to_proto};
use lapor_shared::proto::v1;
use prost::Message as _;

/// Personal data found in a request, which no refusal may quote: the
/// reporter's NIK, phone number and e-mail address (UU 27/2022; the
/// validators promise it in `proto::limits`).
///
/// Only values that cannot occur in a refusal's own wording are tracked, so
/// a hit is an echo and never a coincidence: a NIK of 12 or more ASCII digits
/// (no message prints a run of 12 digits), a phone number of 10 or more
/// digits with at most a leading `+`, an e-mail of 6 or more characters with
/// an `@` and no whitespace (every message containing `@` has spaces
/// around it). The reporter's name is free text and is not tracked.
#[derive(Debug, Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    pub(crate) fn of_intake(intake: Option<&v1::ComplaintIntake>) -> Self {
        let mut secrets = Secrets::default();
        if let Some(r) = intake.and_then(|i| i.reporter.as_ref()) {
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if r.nik.len() >= 12 && digits(&r.nik) {
                secrets.0.push(r.nik.clone());
            }
            let phone = r.phone.strip_prefix('+').unwrap_or(&r.phone);
            if phone.len() >= 10 && digits(phone) {
                secrets.0.push(phone.to_owned());
            }
            let email = &r.email;
            if email.chars().count() >= 6
                && email.contains('@')
                && !email.chars().any(char::is_whitespace)
            {
                secrets.0.push(email.clone());
            }
        }
        secrets
    }

    pub(crate) fn assert_not_in(&self, text: &str) {
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "a refusal quotes personal data {secret:?}: {text:?}"
            );
        }
    }
}

/// A validation refusal: at least one violation, none quoting `secrets`, and
/// as a status `INVALID_ARGUMENT` whose message and details quote none either.
pub(crate) fn assert_refusal(v: Violations, secrets: &Secrets) {
    assert!(!v.is_empty(), "a refusal without a violation");
    // `Violations::finish` adds a field-less violation when a validator
    // yields nothing without saying why: a rule that forgot its message.
    assert!(
        v.iter().all(|violation| !violation.field.is_empty()),
        "a violation names no field: {v}"
    );
    secrets.assert_not_in(&v.to_string());
    let status = match v.into_result() {
        Ok(()) => panic!("non-empty violations became Ok"),
        Err(status) => status,
    };
    assert_status_refusal(&status, secrets);
}

/// A status answered for a bad request: `INVALID_ARGUMENT`, no personal data.
pub(crate) fn assert_status_refusal(status: &tonic::Status, secrets: &Secrets) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    secrets.assert_not_in(status.message());
    secrets.assert_not_in(&String::from_utf8_lossy(status.details()));
}

/// The form the store keeps and peers receive: `event_to_proto` is
/// deterministic (the store compares encodings for idempotency) and its
/// output validates back to the same event (peers accept what we wrote).
pub(crate) fn assert_event_round_trips(event: &Event) {
    let bytes = event_to_proto(event).encode_to_vec();
    assert_eq!(
        event_to_proto(event).encode_to_vec(),
        bytes,
        "event_to_proto is not deterministic"
    );
    let decoded = match v1::Event::decode(bytes.as_slice()) {
        Ok(decoded) => decoded,
        Err(e) => panic!("our own event encoding does not decode: {e}"),
    };
    assert_eq!(
        event_from_proto(decoded),
        Ok(event.clone()),
        "an event we would store is refused (or changed) when read back"
    );
}
