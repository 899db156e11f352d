use super::*;

fn name(n: &str) -> KeyName {
    KeyName::new(n).unwrap()
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed(name("example.com/log"), &[1; 32]).unwrap()
}

#[test]
fn key_names_follow_the_spec() {
    for ok in ["a", "example.com/log42", "ünïcode"] {
        assert!(KeyName::new(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a b", "a+b", "a\u{00a0}b", "a\tb", "a\u{2003}b"] {
        assert!(KeyName::new(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn verifier_key_string_round_trips_and_is_checked() {
    let v = signer().verifier().clone();
    let text = v.to_string();
    assert!(text.starts_with(&format!("example.com/log+{}+", v.key_id())));
    assert_eq!(text.parse::<NoteVerifier>().unwrap(), v);

    let (prefix, key) = text.rsplit_once('+').unwrap();
    let wrong_id = format!("example.com/log+00000000+{key}");
    assert!(matches!(
        wrong_id.parse::<NoteVerifier>(),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    let mut other_type = BASE64.decode(key).unwrap();
    other_type[0] = 0x02;
    let other_type = format!("{prefix}+{}", BASE64.encode(other_type));
    assert_eq!(
        other_type.parse::<NoteVerifier>(),
        Err(NoteError::UnsupportedType(2))
    );
    for bad in [
        "",
        "name",
        "name+1234abcd",
        &format!("{text}+extra"),
        &format!("{prefix}+{}", key.trim_end_matches('=')),
        &text.replace(
            &v.key_id().to_string(),
            &v.key_id().to_string().to_uppercase(),
        ),
    ] {
        if bad == text {
            continue;
        }
        assert!(bad.parse::<NoteVerifier>().is_err(), "{bad:?}");
    }
}

#[test]
fn sign_parse_verify_round_trip() {
    let s = signer();
    let note = s.sign("hello\nworld\n").unwrap();
    assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
    let parsed = SignedNote::parse(note.as_bytes()).unwrap();
    assert_eq!(parsed.text(), "hello\nworld\n");
    assert_eq!(parsed.signatures().len(), 1);
    assert_eq!(parsed.signatures()[0].key_id(), s.verifier().key_id());
    assert_eq!(
        parsed.verify(&[s.verifier().clone()]).unwrap(),
        "hello\nworld\n"
    );
}

#[test]
fn text_may_hold_blank_lines_but_not_end_in_one() {
    let s = signer();
    let note = s.sign("a\n\nb\n").unwrap();
    let parsed = SignedNote::parse(note.as_bytes()).unwrap();
    assert_eq!(parsed.text(), "a\n\nb\n");
    assert!(parsed.verify(&[s.verifier().clone()]).is_ok());
    assert!(s.sign("a\n\n").is_err());
    assert!(s.sign("no newline").is_err());
    assert!(s.sign("tab\there\n").is_err());
}

#[test]
fn refuses_bad_signatures_unknown_keys_and_malformed_lines() {
    let s = signer();
    let trusted = [s.verifier().clone()];
    let note = s.sign("body\n").unwrap();

    // Changing the text breaks the signature of the trusted key.
    let tampered = note.replacen("body", "bodz", 1);
    assert!(matches!(
        SignedNote::parse(tampered.as_bytes())
            .unwrap()
            .verify(&trusted),
        Err(NoteError::BadSignature { .. })
    ));

    // A note by another key (same name, other ID) is not trusted.
    let other = NoteSigner::from_seed(name("example.com/log"), &[2; 32]).unwrap();
    let by_other = other.sign("body\n").unwrap();
    assert!(matches!(
        SignedNote::parse(by_other.as_bytes())
            .unwrap()
            .verify(&trusted),
        Err(NoteError::NoTrustedSignature(_))
    ));
    // ...but its extra signature is ignored when ours is present too.
    let sig_line = by_other.split_once("\n\n").unwrap().1;
    let both = format!("{note}{sig_line}");
    assert!(
        SignedNote::parse(both.as_bytes())
            .unwrap()
            .verify(&trusted)
            .is_ok()
    );

    let cases: [(&str, usize); 8] = [
        ("body\n", 0),
        ("body\n\n", 3),
        ("body\n\n- example.com/log AAAAAAA=\n", 3),
        ("body\n\n\u{2014} example.com/log\n", 3),
        ("body\n\n\u{2014} example.com/log !!!!\n", 3),
        ("body\n\n\u{2014} example.com/log AAAA\n", 3),
        ("body\n\n\u{2014}  AAAAAAA=\n", 3),
        ("body\n\n\u{2014} example.com/log AAAAAAA=", 3),
    ];
    for (bad, line) in cases {
        match SignedNote::parse(bad.as_bytes()) {
            Err(NoteError::SignatureLine { line: got, .. }) => assert_eq!(got, line, "{bad:?}"),
            Err(NoteError::Text(_)) => assert_eq!(line, 0, "{bad:?}"),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    assert!(matches!(
        SignedNote::parse(b"a\rb\n\n\xe2\x80\x94 k AAAAAAA=\n"),
        Err(NoteError::ControlCharacter {
            line: 1,
            byte: b'\r'
        })
    ));
    assert!(matches!(
        SignedNote::parse(b"a\xffb\n\n"),
        Err(NoteError::NotUtf8(1))
    ));
    assert!(matches!(
        SignedNote::parse(&vec![b'a'; MAX_NOTE_LEN + 1]),
        Err(NoteError::TooLarge(_))
    ));
    let many = format!("{note}{}", sig_line.repeat(MAX_SIGNATURES));
    assert!(matches!(
        SignedNote::parse(many.as_bytes()),
        Err(NoteError::TooManySignatures(101))
    ));
}

#[test]
fn private_key_string_round_trips_and_hides_the_key() {
    let s = signer();
    let secret = s.private_key_string().unwrap();
    assert!(secret.starts_with("PRIVATE+KEY+example.com/log+"));
    let back = NoteSigner::from_private_key_string(&secret).unwrap();
    assert_eq!(back.verifier(), s.verifier());
    let debug = format!("{s:?}");
    let seed_b64 = secret.rsplit_once('+').unwrap().1;
    assert!(!debug.contains(seed_b64));
    assert!(NoteSigner::from_private_key_string("PRIVATE+KEY+x").is_err());
    let wrong_id = secret.replace(&s.verifier().key_id().to_string(), "00000000");
    assert!(matches!(
        NoteSigner::from_private_key_string(&wrong_id),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    let generated = NoteSigner::generate(name("g")).unwrap();
    let note = generated.sign("x\n").unwrap();
    assert!(
        SignedNote::parse(note.as_bytes())
            .unwrap()
            .verify(&[generated.verifier().clone()])
            .is_ok()
    );
    let pkcs8 = Ed25519KeyPair::generate().unwrap().to_pkcs8().unwrap();
    assert!(NoteSigner::from_pkcs8(name("p"), pkcs8.as_ref()).is_ok());
    assert!(NoteSigner::from_seed(name("p"), &[0; 31]).is_err());
}

#[test]
fn keys_whose_base64_contains_plus_round_trip() {
    // Base64 uses '+', the separator of key strings: only the first two
    // '+' separate fields. Found by the cross-check with `signed_note`.
    let with_plus = (0u8..=255)
        .map(|b| NoteSigner::from_seed(name("k"), &[b; 32]).unwrap())
        .find(|s| s.verifier().to_string().matches('+').count() > 2)
        .unwrap();
    let text = with_plus.verifier().to_string();
    assert_eq!(&text.parse::<NoteVerifier>().unwrap(), with_plus.verifier());
    let secret = with_plus.private_key_string().unwrap();
    assert_eq!(
        NoteSigner::from_private_key_string(&secret)
            .unwrap()
            .verifier(),
        with_plus.verifier()
    );
}
