//! Just enough DER (ITU-T X.690) to read and rewrite the few structures OpenSSL's Rust API cannot reach:
//! certificate extensions, an RFC 3161 request and response, and a CMS SignerInfo's unsigned attributes.
//!
//! Hand-written rather than RustCrypto's `der`/`cms`/`x509-tsp`: those would add a second X.509 and CMS
//! stack next to OpenSSL (about ten crates) for a dozen fields, while every signature check stays with
//! OpenSSL. Only what these structures use is supported: single-byte tags (numbers below 31), definite
//! lengths up to 4 bytes. Every reader returns `None` on anything else, never panics, and never reads
//! past its input, so hostile packages cannot do more than fail to parse.

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
/// `[n]` constructed, context-specific (explicit tagging, or implicit over a SET/SEQUENCE).
pub(crate) const fn context(n: u8) -> u8 {
    0xA0 | n
}

/// One element: its tag, its contents, and the whole encoding (tag and length included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) contents: &'a [u8],
    pub(crate) encoded: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// The elements inside a constructed element.
    pub(crate) fn children(&self) -> Option<Vec<Tlv<'a>>> {
        elements(self.contents)
    }
}

/// Splits one element off the front of `input`: (element, rest).
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let (&first, after_first) = after_tag.split_first()?;
    let (len, body) = if first < 0x80 {
        (usize::from(first), after_first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || after_first.len() < count {
            return None;
        }
        let (len_bytes, body) = after_first.split_at(count);
        (
            len_bytes.iter().fold(0, |len, &b| (len << 8) | usize::from(b)),
            body,
        )
    };
    if body.len() < len {
        return None;
    }
    let header = input.len() - body.len();
    let element = Tlv {
        tag,
        contents: &body[..len],
        encoded: &input[..header + len],
    };
    Some((element, &body[len..]))
}

/// Exactly one element filling `input`.
pub(crate) fn read_all(input: &[u8]) -> Option<Tlv<'_>> {
    match read(input)? {
        (element, []) => Some(element),
        _ => None,
    }
}

/// Every element of `input`, which must be nothing but whole elements.
pub(crate) fn elements(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (element, rest) = read(input)?;
        out.push(element);
        input = rest;
    }
    Some(out)
}

/// Encodes one element with the shortest length form.
pub(crate) fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// Encodes a constructed element from already encoded parts.
pub(crate) fn encode_parts(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    encode(tag, &parts.concat())
}

/// One X.509 extension (RFC 5280 §4.1): OID contents, criticality, and the extnValue contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extension<'a> {
    pub(crate) oid: &'a [u8],
    pub(crate) critical: bool,
    pub(crate) value: &'a [u8],
}

/// The extensions of a DER certificate, read from
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { …, [3] EXPLICIT Extensions }, … }`. The openssl
/// crate cannot list a certificate's extensions, hence this walk. `None` if the certificate cannot be
/// walked.
pub(crate) fn certificate_extensions(cert_der: &[u8]) -> Option<Vec<Extension<'_>>> {
    let (cert, _) = read(cert_der)?;
    let (tbs, _) = read(cert.contents)?;
    let Some(list) = tbs.children()?.into_iter().find(|e| e.tag == context(3)) else {
        return Some(Vec::new());
    };
    let (list, _) = read(list.contents)?;
    list.children()?
        .into_iter()
        .map(|extension| {
            // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
            let fields = extension.children()?;
            let (oid, rest) = fields.split_first()?;
            let (critical, value) = match rest {
                [flag, value] if flag.tag == BOOLEAN => {
                    (flag.contents.first().is_some_and(|&b| b != 0), value)
                }
                [value] => (false, value),
                _ => return None,
            };
            (oid.tag == OID && value.tag == OCTET_STRING).then_some(Extension {
                oid: oid.contents,
                critical,
                value: value.contents,
            })
        })
        .collect()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rejects_truncated_and_unsupported_input_without_panicking() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x30, 0x80],
            &[0x30, 0x05, 0x30],
            &[0x1F, 0x01, 0x00],
        ] {
            assert_eq!(read(input), None, "{input:02x?}");
            assert_eq!(certificate_extensions(input), None, "{input:02x?}");
        }
    }

    #[test]
    fn encodes_lengths_in_the_shortest_form() {
        assert_eq!(encode(OCTET_STRING, &[7]), [0x04, 0x01, 0x07]);
        let long = encode(OCTET_STRING, &[0; 300]);
        assert_eq!(long[..4], [0x04, 0x82, 0x01, 0x2C]);
        let (element, rest) = read(&long).unwrap();
        assert_eq!((element.contents.len(), rest.len()), (300, 0));
    }

    #[test]
    fn finds_extensions_and_their_criticality() {
        // Certificate { tbs { version [0], [3] { SEQ { ext(2.5.29.19, critical), ext(1.2.3, not critical) } } } }
        let bc = [
            0x30, 0x0A, 0x06, 0x03, 0x55, 0x1D, 0x13, 0x01, 0x01, 0xFF, 0x04, 0x00,
        ];
        let other = [0x30, 0x06, 0x06, 0x02, 0x2A, 0x03, 0x04, 0x00];
        let list = encode_parts(SEQUENCE, &[&bc, &other]);
        let tbs = encode_parts(
            SEQUENCE,
            &[&[0xA0, 0x03, 0x02, 0x01, 0x02], &encode(context(3), &list)],
        );
        let cert = encode(SEQUENCE, &tbs);
        let extensions = certificate_extensions(&cert).unwrap();
        assert_eq!(
            extensions,
            [
                Extension {
                    oid: &[0x55, 0x1D, 0x13],
                    critical: true,
                    value: &[]
                },
                Extension {
                    oid: &[0x2A, 0x03],
                    critical: false,
                    value: &[]
                },
            ]
        );
    }
}
