//! `MultiTenant.specs` in the first implementation's shape: what its client forms write unescaped into
//! YAML (the app name, job id keys, URLs) is form-safe, the name as published stays in `info.app`, and
//! the card keeps the published name in its title and connection.yml.

mod common;

use multitenant_core::specs::{specs, Field, Spec};

fn get<'a>(list: &'a [(&str, Field<'a>)], key: &str) -> &'a Field<'a> {
    &list.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no {key}")).1
}

fn text<'a>(f: &'a Field<'a>) -> &'a str {
    match f {
        Field::Own(s) | Field::Common(s) => s,
        Field::Made(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

fn one(app: &str, url: &str) -> (String, String, String, String, String) {
    let mut f = common::found("4242", "alice");
    f.share.message.app = app.into();
    f.share.message.connection.insert("ollama_url".into(), url.into());
    let found = [f];
    let s: Vec<Spec> = specs(&found, None, "bob", true);
    let s = &s[0];
    (
        s.key.clone(),
        text(get(&s.info, "app")).to_string(),
        text(get(&s.accounting, "mta")).to_string(),
        text(get(&s.connection, "mt_appname")).to_string(),
        text(get(&s.connection, "ollama_url")).to_string(),
    )
}

#[test]
fn a_natural_name_and_url_are_given_as_published() {
    let (key, app, mta, appname, url) = one("Ollama_API", "http://node017:41234");
    assert_eq!(key, "4242@mtcluster");
    assert_eq!((app.as_str(), mta.as_str(), appname.as_str()), ("Ollama_API", "Ollama_API", "Ollama_API"));
    assert_eq!(url, "http://node017:41234");
}

#[test]
fn hostile_names_and_urls_are_form_safe_and_the_name_is_kept_in_info() {
    for (name, safe) in [
        ("Prof's LLM", "Prof’s LLM"),
        ("a: b", "a： b"),
        ("#1 model", "＃1 model"),
        ("<%= 1+1 %>", "<％= 1+1 ％>"),
        ("[x], {y}", "［x］， ｛y｝"),
        ("Modèle «été» 日本語", "Modèle «été» 日本語"),
    ] {
        let (_, app, mta, appname, url) = one(name, "http://node017:41234/it's <%= x %>");
        assert_eq!(app, name);
        assert_eq!(mta, safe);
        assert_eq!(appname, safe);
        assert_eq!(url, "http://node017:41234/it%27s%20%3C%25=%20x%20%25%3E");
    }
}

#[test]
fn other_connection_values_are_exactly_as_published() {
    let mut f = common::found("4242", "alice");
    f.share.message = common::database();
    let found = [f];
    let s = specs(&found, None, "bob", false);
    assert_eq!(s[0].key, "4242");
    assert_eq!(text(get(&s[0].connection, "db_password")), "Xk9#q 'v|7\"zP€2");
    assert_eq!(text(get(&s[0].connection, "jdbc_url")), "jdbc:postgresql://node042:5432/msba_2026");
}
