//! `tokenizers`, `arrow-ipc` and `parquet` panic on some malformed input where
//! they should fail (an `expect` on a file's JSON, an assertion on a buffer's
//! length or alignment). Their calls on file contents go through [`caught`],
//! so that such a file is an error naming it rather than the end of the
//! program. What they allocate is bounded separately, by checking the file's
//! size fields before they are called.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// `f`'s result, or the message it panicked with. Callers drop the state `f`
/// touched when it panics, so none of it is seen half-updated.
pub(crate) fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let text = panic.downcast_ref::<&str>().map(|s| s.to_string());
        text.or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}
