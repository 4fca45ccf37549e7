//! The shape of a storage failure, shared by the daemon's replica store and the relay's
//! store: what kind it is (`Unavailable` is the one worth retrying) and what was being
//! done. Each crate declares its own type with [`store_error!`](crate::store_error!), so
//! that each converts its backends' errors (sled, PostgreSQL) into it, and each says whose
//! storage failed.

/// The kinds of storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The storage engine failed (disk, database, object store).
    Backend,
    /// Stored bytes that do not read back: a damaged store, or one a newer version wrote.
    Corrupt,
    /// The backend cannot be reached now (a database restarting, a worker gone): trying
    /// again later may succeed.
    Unavailable,
}

/// Declares `pub struct StoreError { kind, message }` in the calling module, displayed as
/// `"<whose>: <message>"`, with a constructor per kind and `retryable`.
#[macro_export]
macro_rules! store_error {
    ($(#[$attr:meta])* $whose:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone)]
        pub struct StoreError {
            /// What kind of failure.
            pub kind: $crate::store_error::StoreErrorKind,
            /// What was being done, and what failed.
            pub message: String,
        }

        impl std::fmt::Display for StoreError {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}: {}", $whose, self.message)
            }
        }

        impl std::error::Error for StoreError {}

        impl StoreError {
            /// The storage engine failed.
            pub fn backend(message: impl Into<String>) -> Self {
                Self {
                    kind: $crate::store_error::StoreErrorKind::Backend,
                    message: message.into(),
                }
            }

            /// Stored bytes do not read back.
            pub fn corrupt(message: impl Into<String>) -> Self {
                Self {
                    kind: $crate::store_error::StoreErrorKind::Corrupt,
                    message: message.into(),
                }
            }

            /// The backend cannot be reached now.
            pub fn unavailable(message: impl Into<String>) -> Self {
                Self {
                    kind: $crate::store_error::StoreErrorKind::Unavailable,
                    message: message.into(),
                }
            }

            /// Whether trying again later may succeed.
            pub fn retryable(&self) -> bool {
                self.kind == $crate::store_error::StoreErrorKind::Unavailable
            }
        }
    };
}
