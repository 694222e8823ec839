//! [`Violations`]: every problem found in one message, and its mapping to
//! an `INVALID_ARGUMENT` status with `google.rpc.BadRequest` details.

use std::fmt;

use tonic_types::{ErrorDetails, StatusExt as _};

use crate::proto::limits::FieldError;

/// How many violations the `Status` message spells out; all of them are in
/// the `BadRequest` details.
const SUMMARY_VIOLATIONS: usize = 3;

/// One refused field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field in the request, e.g. `intake.reporter.nik`.
    pub field: String,
    /// What is wrong, without quoting personal data.
    pub description: String,
}

/// Every problem found in one message. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    items: Vec<Violation>,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is invalid. The field is anything that displays
    /// as its path, so a path built from parts is only joined into a string
    /// here, when something is actually wrong.
    pub fn add(&mut self, field: impl std::fmt::Display, description: impl Into<String>) {
        self.items.push(Violation {
            field: field.to_string(),
            description: description.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.items.iter()
    }

    /// The refused field paths, in the order found.
    pub fn fields(&self) -> Vec<&str> {
        self.items.iter().map(|v| v.field.as_str()).collect()
    }

    /// Appends another collector's violations.
    pub fn extend(&mut self, other: Violations) {
        self.items.extend(other.items);
    }

    /// `Ok` when nothing was recorded, else the `INVALID_ARGUMENT` status.
    pub fn into_result(self) -> Result<(), tonic::Status> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into())
        }
    }

    /// `value` when nothing was recorded, else the violations.
    pub(super) fn finish<T>(mut self, value: Option<T>) -> Result<T, Violations> {
        match value {
            Some(value) if self.is_empty() => Ok(value),
            Some(_) => Err(self),
            None => {
                if self.is_empty() {
                    // Every path that yields `None` records why; keep the
                    // refusal explicit should one ever forget.
                    self.add("", "invalid message");
                }
                Err(self)
            }
        }
    }

    /// `Some(value)` when `result` is Ok, else records the error at `field`.
    pub(super) fn check<T>(
        &mut self,
        field: impl std::fmt::Display,
        result: Result<T, FieldError>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }

    /// Records `field` as missing and yields `None`.
    pub(super) fn missing<T>(&mut self, field: impl std::fmt::Display) -> Option<T> {
        self.add(field, FieldError::Missing.to_string());
        None
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

impl From<Violations> for tonic::Status {
    fn from(v: Violations) -> Self {
        let mut summary = String::from("invalid request: ");
        for (i, item) in v.items.iter().take(SUMMARY_VIOLATIONS).enumerate() {
            if i > 0 {
                summary.push_str("; ");
            }
            summary.push_str(&format!("{}: {}", item.field, item.description));
        }
        if v.len() > SUMMARY_VIOLATIONS {
            summary.push_str(&format!(" (and {} more)", v.len() - SUMMARY_VIOLATIONS));
        }
        let mut details = ErrorDetails::new();
        for item in v.items {
            details.add_bad_request_violation(item.field, item.description);
        }
        tonic::Status::with_error_details(tonic::Code::InvalidArgument, summary, details)
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt as _;

    use super::*;

    #[test]
    fn violations_become_invalid_argument_with_bad_request_details() {
        let mut v = Violations::new();
        for field in ["a", "b", "c", "d"] {
            v.add(field, format!("{field} is wrong"));
        }
        assert_eq!(
            v.to_string(),
            "a: a is wrong; b: b is wrong; c: c is wrong; d: d is wrong"
        );
        let status = tonic::Status::from(v);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid request: a: a is wrong; b: b is wrong; c: c is wrong (and 1 more)"
        );
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest details");
        let fields: Vec<&str> = bad
            .field_violations
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["a", "b", "c", "d"]);
        assert_eq!(bad.field_violations[3].description, "d is wrong");
    }

    #[test]
    fn an_empty_collector_is_ok_and_a_failed_build_is_never_silent() {
        assert!(Violations::new().into_result().is_ok());
        assert_eq!(Violations::new().finish(Some(1)), Ok(1));
        let err = Violations::new().finish::<u8>(None).unwrap_err();
        assert_eq!(err.len(), 1);
        let mut v = Violations::new();
        v.add("x", "bad");
        assert_eq!(v.clone().finish(Some(1)), Err(v));
    }
}
