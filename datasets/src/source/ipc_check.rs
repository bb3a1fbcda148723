//! Arrow IPC framing checked against the file before `arrow-ipc` reads it.
//! `arrow-ipc` sizes buffers by the file's length fields (the footer's, each
//! message's metadata and body, each footer block's) without comparing them
//! with the file, and slices a batch's buffers out of its body without
//! checking that they lie inside it, which panics; so those fields are
//! checked here first. Only metadata is read: bodies are skipped.

use std::io::{self, Read, Seek, SeekFrom};

use arrow_ipc::{Message, root_as_footer, root_as_message};

const CONTINUATION: [u8; 4] = [0xFF; 4];
/// `ARROW1` and two bytes of padding.
const LEADING_MAGIC: u64 = 8;
/// The footer's length and `ARROW1`.
const TRAILER: u64 = 10;

fn io(error: io::Error) -> String {
    error.to_string()
}

fn read_vec(file: &mut (impl Read + Seek), at: u64, len: u64) -> Result<Vec<u8>, String> {
    file.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// The IPC file format: every block the footer lists must lie between the
/// leading magic and the footer, and its message within the block.
pub(super) fn check_file(file: &mut (impl Read + Seek), len: u64) -> Result<(), String> {
    if len < LEADING_MAGIC + TRAILER {
        return Err(format!("{len} bytes is too short for the IPC file format"));
    }
    let trailer = read_vec(file, len - TRAILER, 4)?;
    let footer_len = i32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    let footer_end = len - TRAILER;
    let Some(footer_start) = u64::try_from(footer_len)
        .ok()
        .and_then(|n| footer_end.checked_sub(n))
        .filter(|&start| start >= LEADING_MAGIC)
    else {
        return Err(format!(
            "its footer length {footer_len} does not fit its {len} bytes"
        ));
    };
    let footer_bytes = read_vec(file, footer_start, footer_end - footer_start)?;
    let footer = root_as_footer(&footer_bytes).map_err(|e| format!("bad footer: {e}"))?;
    let dictionaries = footer.dictionaries().into_iter().flatten();
    for block in dictionaries.chain(footer.recordBatches().into_iter().flatten()) {
        let (offset, meta, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
        let fits = |start: u64, n: u64| start.checked_add(n).filter(|&end| end <= footer_start);
        let span = u64::try_from(offset)
            .ok()
            .filter(|&o| o >= LEADING_MAGIC)
            .and_then(|o| {
                let meta_end = fits(o, u64::try_from(meta).ok()?)?;
                fits(meta_end, u64::try_from(body).ok()?).map(|_| (o, meta_end))
            });
        let Some((start, meta_end)) = span else {
            return Err(format!(
                "a footer block [offset {offset}, {meta} + {body} bytes) lies outside the \
                 {footer_start} bytes before the footer"
            ));
        };
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let (prefix, meta_len) = prefix(file)?.ok_or("a footer block has no message")?;
        if start + prefix + meta_len > meta_end {
            return Err(format!(
                "the message at byte {start} is longer than its footer block"
            ));
        }
        let meta_bytes = read_vec(file, start + prefix, meta_len)?;
        check_buffers(&message(&meta_bytes, start)?, body, start)?;
    }
    Ok(())
}

/// The IPC stream format: each message's metadata and body must fit in what
/// is left of the file.
pub(super) fn check_stream(file: &mut (impl Read + Seek), len: u64) -> Result<(), String> {
    let mut at = 0;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    // A stream may end without its end marker, or cut short; `arrow-ipc` words those.
    while len - at >= 8 {
        let Some((prefix, meta_len)) = prefix(file)? else {
            return Ok(());
        };
        let start = at;
        at += prefix;
        if meta_len > len - at {
            return Err(format!(
                "the message at byte {start} claims {meta_len} bytes of metadata, more than the \
                 {} bytes left",
                len - at
            ));
        }
        let meta_bytes = read_vec(file, at, meta_len)?;
        let message = message(&meta_bytes, start)?;
        at += meta_len;
        let body = message.bodyLength();
        if !u64::try_from(body).is_ok_and(|body| body <= len - at) {
            return Err(format!(
                "the message at byte {start} claims a body of {body} bytes, more than the {} \
                 bytes left",
                len - at
            ));
        }
        check_buffers(&message, body, start)?;
        at += body as u64;
        file.seek(SeekFrom::Start(at)).map_err(io)?;
    }
    Ok(())
}

/// A message's length prefix: its size and the metadata length, or `None` at
/// the end-of-stream marker. Old streams have no continuation marker.
fn prefix(file: &mut impl Read) -> Result<Option<(u64, u64)>, String> {
    let mut word = [0; 4];
    file.read_exact(&mut word).map_err(io)?;
    let mut prefix = 4;
    if word == CONTINUATION {
        file.read_exact(&mut word).map_err(io)?;
        prefix = 8;
    }
    match i32::from_le_bytes(word) {
        0 => Ok(None),
        n if n < 0 => Err(format!("a message claims {n} bytes of metadata")),
        n => Ok(Some((prefix, n as u64))),
    }
}

fn message(bytes: &[u8], start: u64) -> Result<Message<'_>, String> {
    root_as_message(bytes).map_err(|e| format!("the message at byte {start} is not valid: {e}"))
}

/// Every buffer of a record or dictionary batch must lie inside its body.
fn check_buffers(message: &Message<'_>, body: i64, start: u64) -> Result<(), String> {
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
    for buffer in batch.and_then(|b| b.buffers()).into_iter().flatten() {
        let (offset, length) = (buffer.offset(), buffer.length());
        let inside =
            offset >= 0 && length >= 0 && offset.checked_add(length).is_some_and(|end| end <= body);
        if !inside {
            return Err(format!(
                "the batch at byte {start} has a buffer [offset {offset}, {length} bytes) \
                 outside its {body}-byte body"
            ));
        }
    }
    Ok(())
}
