//! The one error type of [`super`].

use std::path::PathBuf;

/// Why the outbox could not queue, settle or read an event. Whatever the
/// error, the file stays readable and every event committed before it is
/// kept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    #[error("cannot open the outbox {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// The disk (or the quota) is full. Nothing of the failed batch was
    /// written; freeing space is enough, the outbox reopens the file on the
    /// next write.
    #[error(
        "the disk holding the outbox is full ({reason}): the event was not queued; \
         free some space and try again (queued events are kept)"
    )]
    DiskFull { reason: String },
    #[error("cannot write the outbox: {reason}; the event was not queued")]
    Write { reason: String },
    /// Recording the cloud's answers failed: the events stay queued and
    /// are sent again (the cloud applies each id once).
    #[error(
        "cannot record what the cloud answered ({reason}); the events stay queued and will be \
         sent again (the cloud applies each once)"
    )]
    RecordAcks { reason: String },
    #[error("cannot read the outbox: {reason}")]
    Read { reason: String },
    /// The event cannot become a relay frame (too large, or a kind this
    /// build cannot send). A bug of the caller, not of the disk.
    #[error("cannot queue the event: {reason}")]
    Unencodable { reason: String },
    #[error("the outbox is closed")]
    Closed,
}

impl OutboxError {
    /// The error a failed write turns into: [`OutboxError::DiskFull`] when
    /// the cause is lack of space, else [`OutboxError::Write`].
    pub(crate) fn write(err: impl Into<redb::Error>) -> OutboxError {
        let err = err.into();
        let reason = err.to_string();
        if is_disk_full(&err) {
            OutboxError::DiskFull { reason }
        } else {
            OutboxError::Write { reason }
        }
    }

    /// The same failure, as seen by whoever was recording acks.
    pub(crate) fn for_acks(&self) -> OutboxError {
        match self {
            OutboxError::DiskFull { reason } | OutboxError::Write { reason } => {
                OutboxError::RecordAcks {
                    reason: reason.clone(),
                }
            }
            other => other.clone(),
        }
    }

    pub(crate) fn read(err: impl Into<redb::Error>) -> OutboxError {
        OutboxError::Read {
            reason: err.into().to_string(),
        }
    }
}

fn is_disk_full(err: &redb::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        redb::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
        ),
        _ => false,
    }
}
