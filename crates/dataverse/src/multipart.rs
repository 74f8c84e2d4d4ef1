//! `multipart/form-data` bodies (RFC 7578), for form and file uploads.

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    /// The form field name.
    pub name: String,
    /// A file name, which makes the part a file upload.
    pub file_name: Option<String>,
    /// The part's content type; `application/octet-stream` is used for files without one.
    pub content_type: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

/// Encodes `parts` with `boundary`; returns the body and the `Content-Type` header value.
/// Quotes and line breaks in names are escaped as RFC 7578 section 4.2 describes.
pub fn encode_form(parts: &[FormPart], boundary: &str) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!(
            "Content-Disposition: form-data; name=\"{}\"",
            escape(&part.name)
        );
        if let Some(file_name) = &part.file_name {
            disposition.push_str(&format!("; filename=\"{}\"", escape(file_name)));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        let content_type = part
            .content_type
            .as_deref()
            .or(part.file_name.as_ref().map(|_| "application/octet-stream"));
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

fn escape(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_with_a_field_and_a_file_is_encoded_with_dispositions() {
        let parts = [
            FormPart {
                name: "note".into(),
                file_name: None,
                content_type: None,
                data: b"hello".to_vec(),
            },
            FormPart {
                name: "doc".into(),
                file_name: Some("a\"b.txt".into()),
                content_type: None,
                data: b"\x00\x01".to_vec(),
            },
        ];
        let (body, content_type) = encode_form(&parts, "XyZ");
        assert_eq!(content_type, "multipart/form-data; boundary=XyZ");
        let expected = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a%22b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--XyZ--\r\n";
        assert_eq!(body, expected.to_vec());
    }
}
