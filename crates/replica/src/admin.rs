//! The commands a connection answers itself, about itself or the server, as Redis answers them:
//! ECHO, SELECT, CLIENT, COMMAND and CONFIG. Where raftkv has less than Redis, the answer says so
//! (an error naming what is missing) rather than pretending.

/// A command of the table COMMAND describes: (name, arity, flags, first key, last key, key step).
/// Arity as Redis counts it: the name included, negative for "at least".
type CommandSpec = (&'static str, i64, &'static [&'static str], i64, i64, i64);

const COMMANDS: [CommandSpec; 69] = [
    ("getrange", 4, &["readonly"], 1, 1, 1),
    ("substr", 4, &["readonly"], 1, 1, 1),
    ("setrange", 4, &["write", "denyoom"], 1, 1, 1),
    ("incrbyfloat", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("copy", -3, &["write", "denyoom"], 1, 2, 1),
    ("randomkey", 1, &["readonly"], 0, 0, 0),
    ("setex", 4, &["write", "denyoom"], 1, 1, 1),
    ("psetex", 4, &["write", "denyoom"], 1, 1, 1),
    ("getex", -2, &["write", "fast"], 1, 1, 1),
    ("expire", -3, &["write", "fast"], 1, 1, 1),
    ("pexpire", -3, &["write", "fast"], 1, 1, 1),
    ("expireat", -3, &["write", "fast"], 1, 1, 1),
    ("pexpireat", -3, &["write", "fast"], 1, 1, 1),
    ("persist", 2, &["write", "fast"], 1, 1, 1),
    ("ttl", 2, &["readonly", "fast"], 1, 1, 1),
    ("pttl", 2, &["readonly", "fast"], 1, 1, 1),
    ("expiretime", 2, &["readonly", "fast"], 1, 1, 1),
    ("pexpiretime", 2, &["readonly", "fast"], 1, 1, 1),
    ("multi", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
    ("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], 0, 0, 0),
    ("discard", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
    ("watch", -2, &["noscript", "loading", "stale", "fast"], 1, -1, 1),
    ("unwatch", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
    ("scan", -2, &["readonly"], 0, 0, 0),
    ("keys", 2, &["readonly"], 0, 0, 0),
    ("type", 2, &["readonly", "fast"], 1, 1, 1),
    ("touch", -2, &["readonly", "fast"], 1, -1, 1),
    ("flushdb", -1, &["write"], 0, 0, 0),
    ("flushall", -1, &["write"], 0, 0, 0),
    ("rename", 3, &["write"], 1, 2, 1),
    ("renamenx", 3, &["write", "fast"], 1, 2, 1),
    ("get", 2, &["readonly", "fast"], 1, 1, 1),
    ("set", -3, &["write", "denyoom"], 1, 1, 1),
    ("setnx", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("getset", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("getdel", 2, &["write", "fast"], 1, 1, 1),
    ("mget", -2, &["readonly", "fast"], 1, -1, 1),
    ("mset", -3, &["write", "denyoom"], 1, -1, 2),
    ("msetnx", -3, &["write", "denyoom"], 1, -1, 2),
    ("incr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decr", 2, &["write", "denyoom", "fast"], 1, 1, 1),
    ("incrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("decrby", 3, &["write", "denyoom", "fast"], 1, 1, 1),
    ("strlen", 2, &["readonly", "fast"], 1, 1, 1),
    ("dbsize", 1, &["readonly", "fast"], 0, 0, 0),
    ("unlink", -2, &["write", "fast"], 1, -1, 1),
    ("append", 3, &["write", "denyoom"], 1, 1, 1),
    ("del", -2, &["write"], 1, -1, 1),
    ("exists", -2, &["readonly", "fast"], 1, -1, 1),
    ("tagged", -6, &["write", "denyoom"], 4, 4, 1),
    ("raft.node", -3, &["admin"], 0, 0, 0),
    ("raft.nodes", 1, &["admin", "readonly"], 0, 0, 0),
    ("raft.transfer-leader", 2, &["admin"], 0, 0, 0),
    ("raft.dial", 3, &["admin"], 0, 0, 0),
    ("vget", 2, &["readonly", "fast"], 1, 1, 1),
    ("vset", 4, &["write", "denyoom", "fast"], 1, 1, 1),
    ("vdel", 3, &["write", "fast"], 1, 1, 1),
    ("delex", -2, &["write", "fast"], 1, 1, 1),
    ("delifeq", 3, &["write", "fast"], 1, 1, 1),
    ("ping", -1, &["fast"], 0, 0, 0),
    ("echo", 2, &["fast"], 0, 0, 0),
    ("info", -1, &["loading", "stale"], 0, 0, 0),
    ("hello", -1, &["noscript", "loading", "stale", "fast", "no_auth"], 0, 0, 0),
    ("client", -2, &["noscript", "loading", "stale"], 0, 0, 0),
    ("command", -1, &["loading", "stale"], 0, 0, 0),
    ("config", -2, &["admin", "noscript", "loading", "stale"], 0, 0, 0),
    ("select", 2, &["loading", "stale", "fast"], 0, 0, 0),
    ("quit", -1, &["noscript", "loading", "stale", "fast", "no_auth"], 0, 0, 0),
    ("auth", -2, &["noscript", "loading", "stale", "fast", "no_auth"], 0, 0, 0),
];

/// What a connection knows of itself, for CLIENT.
pub struct Client<'a> {
    pub id: u64,
    pub resp3: bool,
    pub name: &'a mut Option<Vec<u8>>,
    pub library: &'a mut (Vec<u8>, Vec<u8>),
}

fn arity_error(name: &str, out: &mut Vec<u8>) {
    resp::encode_error(&format!("ERR wrong number of arguments for '{name}' command"), out);
}

fn unknown_subcommand(command: &str, sub: &[u8], out: &mut Vec<u8>) {
    let sub = String::from_utf8_lossy(sub);
    resp::encode_error(&format!("ERR unknown subcommand '{sub}'. Try {command} HELP."), out);
}

fn map_len(n: usize, resp3: bool, out: &mut Vec<u8>) {
    if resp3 {
        resp::encode_map_len(n, out);
    } else {
        resp::encode_array_len(2 * n, out);
    }
}

pub fn echo(args: &resp::ArgBuf, out: &mut Vec<u8>) {
    match args.len() {
        2 => resp::encode_bulk(&args[1], out),
        _ => arity_error("echo", out),
    }
}

/// One database, as in Redis Cluster: SELECT 0 is accepted, any other index refused.
pub fn select(args: &resp::ArgBuf, out: &mut Vec<u8>) {
    if args.len() != 2 {
        return arity_error("select", out);
    }
    match std::str::from_utf8(&args[1]).ok().and_then(|text| text.parse::<i64>().ok()) {
        Some(0) => resp::encode_simple("OK", out),
        Some(_) => resp::encode_error("ERR SELECT is not allowed in cluster mode", out),
        None => resp::encode_error("ERR value is not an integer or out of range", out),
    }
}

pub fn client(args: &resp::ArgBuf, me: Client<'_>, out: &mut Vec<u8>) {
    let Some(sub) = args.get(1) else { return arity_error("client", out) };
    let upper = sub.to_ascii_uppercase();
    match (&upper[..], args.len()) {
        (b"ID", 2) => resp::encode_integer(i64::try_from(me.id).unwrap_or(i64::MAX), out),
        (b"GETNAME", 2) => match me.name {
            Some(name) => resp::encode_bulk(name, out),
            None if me.resp3 => resp::encode_null(out),
            None => resp::encode_nil(out),
        },
        (b"SETNAME", 3) => {
            let name = &args[2];
            if name.iter().any(|&byte| byte <= b' ' || byte > b'~') {
                return resp::encode_error("ERR Client names cannot contain spaces, newlines or special characters.", out);
            }
            *me.name = (!name.is_empty()).then(|| name.to_vec());
            resp::encode_simple("OK", out);
        }
        (b"SETINFO", 4) => {
            let value = args[3].to_vec();
            match &args[2].to_ascii_uppercase()[..] {
                b"LIB-NAME" => me.library.0 = value,
                b"LIB-VER" => me.library.1 = value,
                _ => {
                    let attribute = String::from_utf8_lossy(&args[2]);
                    return resp::encode_error(&format!("ERR Unrecognized option '{attribute}'"), out);
                }
            }
            resp::encode_simple("OK", out);
        }
        // This connection's line. (LIST shows only the calling connection: a connection does not
        // see the others.)
        (b"INFO", 2) | (b"LIST", 2) => {
            let name = me.name.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let (library, version) = (String::from_utf8_lossy(&me.library.0), String::from_utf8_lossy(&me.library.1));
            let protocol = if me.resp3 { 3 } else { 2 };
            let line = format!("id={} name={name} db=0 resp={protocol} lib-name={library} lib-ver={version}\n", me.id);
            crate::session::text_reply(line.as_bytes(), me.resp3, out);
        }
        (b"KILL", _) | (b"PAUSE", _) | (b"UNPAUSE", _) | (b"TRACKING", _) | (b"REPLY", _) | (b"NO-EVICT", _) | (b"NO-TOUCH", _) => {
            let sub = String::from_utf8_lossy(sub);
            resp::encode_error(&format!("ERR CLIENT {sub} is not supported by raftkv"), out);
        }
        (b"ID" | b"GETNAME" | b"SETNAME" | b"SETINFO" | b"INFO" | b"LIST", _) => {
            let sub = String::from_utf8_lossy(sub).to_lowercase();
            resp::encode_error(&format!("ERR wrong number of arguments for 'client|{sub}' command"), out);
        }
        _ => unknown_subcommand("CLIENT", sub, out),
    }
}

/// One command's description. In RESP3 the flags, ACL categories and tips are sets, as Redis
/// sends them.
fn command_info(spec: &CommandSpec, resp3: bool, out: &mut Vec<u8>) {
    let (name, arity, flags, first, last, step) = *spec;
    let set_len = if resp3 { resp::encode_set_len } else { resp::encode_array_len };
    resp::encode_array_len(10, out);
    resp::encode_bulk(name.as_bytes(), out);
    resp::encode_integer(arity, out);
    set_len(flags.len(), out);
    for flag in flags {
        resp::encode_simple(flag, out);
    }
    for number in [first, last, step] {
        resp::encode_integer(number, out);
    }
    // ACL categories, tips, key specifications, subcommands: none described.
    set_len(0, out);
    set_len(0, out);
    resp::encode_array_len(0, out);
    resp::encode_array_len(0, out);
}

/// COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS [name...] (summary and group),
/// COMMAND LIST: the commands raftkv knows.
pub fn command(args: &resp::ArgBuf, resp3: bool, out: &mut Vec<u8>) {
    let Some(sub) = args.get(1) else {
        resp::encode_array_len(COMMANDS.len(), out);
        return COMMANDS.iter().for_each(|spec| command_info(spec, resp3, out));
    };
    match &sub.to_ascii_uppercase()[..] {
        b"COUNT" => resp::encode_integer(COMMANDS.len() as i64, out),
        b"LIST" => {
            resp::encode_array_len(COMMANDS.len(), out);
            COMMANDS.iter().for_each(|spec| resp::encode_bulk(spec.0.as_bytes(), out));
        }
        b"INFO" => {
            resp::encode_array_len(args.len() - 2, out);
            for name in args.iter().skip(2) {
                match COMMANDS.iter().find(|spec| name.eq_ignore_ascii_case(spec.0.as_bytes())) {
                    Some(spec) => command_info(spec, resp3, out),
                    None if resp3 => resp::encode_null(out),
                    None => resp::encode_nil(out),
                }
            }
        }
        b"DOCS" => command_docs(args, resp3, out),
        _ => unknown_subcommand("COMMAND", sub, out),
    }
}

/// COMMAND DOCS [name ...]: each command's summary and group (every command without names; an
/// unknown name is left out, as Redis does).
fn command_docs(args: &resp::ArgBuf, resp3: bool, out: &mut Vec<u8>) {
    let named: Vec<&(&str, &str, &str)> = if args.len() > 2 {
        args.iter().skip(2).filter_map(|name| crate::command_docs::DOCS.iter().find(|doc| name.eq_ignore_ascii_case(doc.0.as_bytes()))).collect()
    } else {
        crate::command_docs::DOCS.iter().collect()
    };
    map_len(named.len(), resp3, out);
    for (name, group, summary) in named {
        resp::encode_bulk(name.as_bytes(), out);
        map_len(2, resp3, out);
        for (field, value) in [("summary", summary), ("group", group)] {
            resp::encode_bulk(field.as_bytes(), out);
            resp::encode_bulk(value.as_bytes(), out);
        }
    }
}

/// CONFIG GET of the parameters that exist here (glob patterns with `*` as in Redis), and a clear
/// error for CONFIG SET and the rest: raftkv is configured by its command-line flags.
/// The node's settings CONFIG GET reports.
pub struct Settings<'a> {
    pub limits: &'a resp::Limits,
    /// `--timeout`, in seconds (0: never).
    pub idle_seconds: u64,
    /// `--max-memory`, in bytes (0: none).
    pub max_memory: u64,
    /// `--max-client-memory`, in bytes (0: none).
    pub max_client_memory: u64,
}

pub fn config(args: &resp::ArgBuf, settings: &Settings<'_>, resp3: bool, out: &mut Vec<u8>) {
    let Some(sub) = args.get(1) else { return arity_error("config", out) };
    match &sub.to_ascii_uppercase()[..] {
        b"GET" if args.len() >= 3 => {
            let parameters = [
                ("proto-max-bulk-len", settings.limits.max_bulk_bytes.to_string()),
                ("databases", "1".to_string()),
                ("timeout", settings.idle_seconds.to_string()),
                ("appendonly", "yes".to_string()),
                ("appendfsync", "always".to_string()),
                ("save", String::new()),
                ("maxmemory", settings.max_memory.to_string()),
                ("maxmemory-policy", "noeviction".to_string()),
                ("maxmemory-clients", settings.max_client_memory.to_string()),
            ];
            let matching: Vec<_> = parameters
                .iter()
                .filter(|(name, _)| args.iter().skip(2).any(|pattern| crate::glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes())))
                .collect();
            map_len(matching.len(), resp3, out);
            for (name, value) in matching {
                resp::encode_bulk(name.as_bytes(), out);
                resp::encode_bulk(value.as_bytes(), out);
            }
        }
        b"GET" => resp::encode_error("ERR wrong number of arguments for 'config|get' command", out),
        b"SET" | b"RESETSTAT" | b"REWRITE" => {
            let sub = String::from_utf8_lossy(sub).to_uppercase();
            resp::encode_error(&format!("ERR CONFIG {sub} is not supported: raftkv is configured by its command-line flags"), out);
        }
        _ => unknown_subcommand("CONFIG", sub, out),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_has_its_docs() {
        let names: Vec<&str> = super::COMMANDS.iter().map(|spec| spec.0).collect();
        let documented: Vec<&str> = crate::command_docs::DOCS.iter().map(|doc| doc.0).collect();
        assert_eq!(names, documented, "COMMAND DOCS must describe the command table, in its order");
    }

    use super::*;
    use crate::request::args;

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn select_takes_database_0_only() {
        for (words, expected) in [
            (&["SELECT", "0"][..], "+OK\r\n"),
            (&["SELECT", "1"][..], "-ERR SELECT is not allowed in cluster mode\r\n"),
            (&["SELECT", "x"][..], "-ERR value is not an integer or out of range\r\n"),
            (&["SELECT"][..], "-ERR wrong number of arguments for 'select' command\r\n"),
        ] {
            let mut out = Vec::new();
            select(&args(words), &mut out);
            assert_eq!(text(&out), expected, "{words:?}");
        }
    }

    #[test]
    fn client_names_itself_and_refuses_what_it_cannot_do() {
        let (mut name, mut library) = (None, (Vec::new(), Vec::new()));
        let mut run = |words: &[&str]| {
            let mut out = Vec::new();
            client(&args(words), Client { id: 7, resp3: false, name: &mut name, library: &mut library }, &mut out);
            text(&out)
        };
        assert_eq!(run(&["CLIENT", "ID"]), ":7\r\n");
        assert_eq!(run(&["CLIENT", "GETNAME"]), "$-1\r\n");
        assert_eq!(run(&["client", "setname", "worker-1"]), "+OK\r\n");
        assert_eq!(run(&["CLIENT", "GETNAME"]), "$8\r\nworker-1\r\n");
        assert!(run(&["CLIENT", "SETNAME", "two words"]).starts_with("-ERR Client names cannot contain spaces"));
        assert_eq!(run(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), "+OK\r\n");
        assert!(run(&["CLIENT", "SETINFO", "COLOR", "red"]).starts_with("-ERR Unrecognized option 'COLOR'"));
        let line = run(&["CLIENT", "LIST"]);
        assert!(line.contains("id=7 name=worker-1 db=0 resp=2 lib-name=redis-py"), "{line}");
        assert_eq!(run(&["CLIENT", "KILL", "ID", "3"]), "-ERR CLIENT KILL is not supported by raftkv\r\n");
        assert!(run(&["CLIENT", "FLY"]).starts_with("-ERR unknown subcommand 'FLY'. Try CLIENT HELP."));
    }

    #[test]
    fn command_describes_the_real_table() {
        let mut out = Vec::new();
        command(&args(&["COMMAND", "COUNT"]), false, &mut out);
        assert_eq!(text(&out), format!(":{}\r\n", COMMANDS.len()));
        let mut out = Vec::new();
        command(&args(&["COMMAND", "INFO", "get", "nosuch"]), false, &mut out);
        assert!(text(&out).starts_with("*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"), "{}", text(&out));
        assert!(text(&out).ends_with("$-1\r\n"));
        let mut out = Vec::new();
        command(&args(&["COMMAND"]), false, &mut out);
        let parsed = resp::parse(&out, &resp::Limits::default()).expect("valid RESP").expect("whole");
        assert!(matches!(parsed.0, resp::Value::Array(Some(ref items)) if items.len() == COMMANDS.len()));
    }

    #[test]
    fn config_gets_what_exists_and_refuses_to_set() {
        let limits = resp::Limits { max_bulk_bytes: 1234, ..resp::Limits::default() };
        let mut out = Vec::new();
        config(&args(&["CONFIG", "GET", "proto-max-*"]), &Settings { limits: &limits, idle_seconds: 0, max_memory: 7, max_client_memory: 0 }, false, &mut out);
        assert_eq!(text(&out), "*2\r\n$18\r\nproto-max-bulk-len\r\n$4\r\n1234\r\n");
        let mut out = Vec::new();
        config(&args(&["CONFIG", "GET", "maxmemory"]), &Settings { limits: &limits, idle_seconds: 0, max_memory: 7, max_client_memory: 0 }, true, &mut out);
        assert_eq!(text(&out), "%1\r\n$9\r\nmaxmemory\r\n$1\r\n7\r\n");
        let mut out = Vec::new();
        config(&args(&["CONFIG", "GET", "lua-*"]), &Settings { limits: &limits, idle_seconds: 0, max_memory: 7, max_client_memory: 0 }, true, &mut out);
        assert_eq!(text(&out), "%0\r\n");
        let mut out = Vec::new();
        config(&args(&["CONFIG", "SET", "timeout", "5"]), &Settings { limits: &limits, idle_seconds: 0, max_memory: 7, max_client_memory: 0 }, false, &mut out);
        assert!(text(&out).starts_with("-ERR CONFIG SET is not supported"));
    }
}
