//! The body of a publish as the Go client sends it (`docs/api.md`, publish): the one encoder
//! the tools (`notary-rekey`) and the Rust test client share. Pure: it only builds bytes.

/// A publish body as the Go client sends it: multipart, field `files`, file name = role.
/// Returns (content type, body).
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "notary-rs-upload-7f3a";
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
