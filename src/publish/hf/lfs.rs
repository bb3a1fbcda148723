//! Git LFS uploads to the Hub. The batch API says where an object goes:
//! nowhere when the Hub holds it already, one PUT, or numbered parts (files
//! of many GB) completed with their ETags; then the Hub verifies what arrived.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::HfRegistry;
use crate::publish::PublishError;

const LFS_TYPE: &str = "application/vnd.git-lfs+json";

pub struct LfsObject {
    pub oid: String,
}

/// What the batch reply asks for one object.
#[derive(Debug, PartialEq)]
enum Transfer {
    Held,
    Single {
        href: String,
        headers: Vec<(String, String)>,
    },
    Parts {
        complete: String,
        chunk_size: u64,
        parts: Vec<String>,
    },
}

/// Uploads the file at `path` (`size` bytes) unless the Hub holds it.
pub fn upload(hub: &HfRegistry, path: &Path, size: u64) -> Result<LfsObject, PublishError> {
    let oid = file_sha256(path)?;
    let batch = json!({
        "operation": "upload",
        "transfers": ["basic", "multipart"],
        "hash_algo": "sha256",
        "ref": { "name": "main" },
        "objects": [{ "oid": oid, "size": size }],
    });
    let reply = hub
        .agent
        .post(format!(
            "{}/{}.git/info/lfs/objects/batch",
            hub.endpoint, hub.repo
        ))
        .header("Authorization", format!("Bearer {}", hub.token()?))
        .header("Accept", LFS_TYPE)
        .header("Content-Type", LFS_TYPE)
        .send(batch.to_string())
        .map_err(|e| hub.unreachable(e))?;
    let reply = hub.json(
        reply,
        &format!("start the LFS upload of {}", path.display()),
    )?;
    let object = reply["objects"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["oid"] == oid.as_str()))
        .ok_or_else(|| hub.remote(format!("the LFS batch reply leaves out {}", path.display())))?;
    if let Some(error) = object.get("error") {
        return Err(hub.remote(format!(
            "refuses the LFS upload of {}: {error}",
            path.display()
        )));
    }
    match transfer(object).map_err(|m| hub.remote(format!("{}: {m}", path.display())))? {
        Transfer::Held => {}
        Transfer::Single { href, headers } => {
            let file = std::fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
            let mut request = hub
                .agent
                .put(&href)
                .header("Content-Length", size.to_string());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let reply = request
                .send(ureq::SendBody::from_owned_reader(file))
                .map_err(|e| hub.unreachable(e))?;
            hub.json(reply, &format!("upload {}", path.display()))?;
        }
        Transfer::Parts {
            complete,
            chunk_size,
            parts,
        } => {
            let mut etags = Vec::with_capacity(parts.len());
            for (index, href) in parts.iter().enumerate() {
                let offset = index as u64 * chunk_size;
                let length = chunk_size.min(size.saturating_sub(offset));
                let mut file = std::fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| PublishError::io(path, e))?;
                let reply = hub
                    .agent
                    .put(href)
                    .header("Content-Length", length.to_string())
                    .send(ureq::SendBody::from_owned_reader(file.take(length)))
                    .map_err(|e| hub.unreachable(e))?;
                let etag = reply
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                hub.json(
                    reply,
                    &format!("upload part {} of {}", index + 1, path.display()),
                )?;
                let etag = etag.ok_or_else(|| {
                    hub.remote(format!(
                        "part {} of {} came back without an ETag",
                        index + 1,
                        path.display()
                    ))
                })?;
                etags.push(json!({ "partNumber": index + 1, "etag": etag }));
            }
            let reply = hub
                .agent
                .post(&complete)
                .header("Authorization", format!("Bearer {}", hub.token()?))
                .header("Accept", LFS_TYPE)
                .header("Content-Type", LFS_TYPE)
                .send(json!({ "oid": oid, "parts": etags }).to_string())
                .map_err(|e| hub.unreachable(e))?;
            hub.json(reply, &format!("complete the upload of {}", path.display()))?;
        }
    }
    if let Some(verify) = object["actions"].get("verify") {
        let href = verify["href"]
            .as_str()
            .ok_or_else(|| hub.remote("an LFS verify action without href".to_owned()))?;
        let mut request = hub
            .agent
            .post(href)
            .header("Accept", LFS_TYPE)
            .header("Content-Type", LFS_TYPE);
        for (name, value) in headers(verify) {
            request = request.header(name, value);
        }
        let reply = request
            .send(json!({ "oid": oid, "size": size }).to_string())
            .map_err(|e| hub.unreachable(e))?;
        hub.json(reply, &format!("verify the upload of {}", path.display()))?;
    }
    Ok(LfsObject { oid })
}

fn file_sha256(path: &Path) -> Result<String, PublishError> {
    let mut file = std::fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| PublishError::io(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn headers(action: &Value) -> Vec<(String, String)> {
    action["header"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The Hub's multipart form of an upload action puts `chunk_size` and one URL
/// per part (keys "1", "2", …) in its header, and the completion URL in href.
fn transfer(object: &Value) -> Result<Transfer, String> {
    let Some(upload) = object["actions"].get("upload") else {
        return Ok(Transfer::Held);
    };
    let href = upload["href"]
        .as_str()
        .ok_or("the upload action has no href")?
        .to_owned();
    let headers = headers(upload);
    let Some((_, chunk_size)) = headers.iter().find(|(k, _)| k == "chunk_size") else {
        return Ok(Transfer::Single { href, headers });
    };
    let chunk_size: u64 = chunk_size
        .parse()
        .map_err(|_| format!("chunk_size {chunk_size:?} is not a number"))?;
    if chunk_size == 0 {
        return Err("chunk_size is 0".to_owned());
    }
    let mut parts: Vec<(u64, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.clone())))
        .collect();
    parts.sort();
    if parts
        .iter()
        .enumerate()
        .any(|(i, (n, _))| *n != i as u64 + 1)
    {
        return Err("the upload parts are not numbered 1, 2, …".to_owned());
    }
    Ok(Transfer::Parts {
        complete: href,
        chunk_size,
        parts: parts.into_iter().map(|(_, url)| url).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reply_is_held_single_or_in_parts() {
        assert_eq!(
            transfer(&json!({ "oid": "a", "size": 1 })).unwrap(),
            Transfer::Held
        );
        let single = json!({ "actions": { "upload": { "href": "https://s/put", "header": { "X-Amz": "v" } } } });
        assert_eq!(
            transfer(&single).unwrap(),
            Transfer::Single {
                href: "https://s/put".to_owned(),
                headers: vec![("X-Amz".to_owned(), "v".to_owned())]
            }
        );
        let parts = json!({ "actions": { "upload": { "href": "https://hub/complete",
            "header": { "chunk_size": "10", "2": "https://s/p2", "1": "https://s/p1" } } } });
        assert_eq!(
            transfer(&parts).unwrap(),
            Transfer::Parts {
                complete: "https://hub/complete".to_owned(),
                chunk_size: 10,
                parts: vec!["https://s/p1".to_owned(), "https://s/p2".to_owned()],
            }
        );
        let gap = json!({ "actions": { "upload": { "href": "h", "header": { "chunk_size": "10", "2": "p2" } } } });
        assert!(transfer(&gap).unwrap_err().contains("numbered"));
    }
}
