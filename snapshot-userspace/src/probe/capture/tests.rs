use super::*;
use crate::probe::{btf::Prototype, tracefs};

fn spec(text: &str) -> ProbeSpec {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn spec_err(text: &str) -> String {
    text.parse::<ProbeSpec>().unwrap_err().to_string()
}

const OPENAT: &str = "format:\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n\
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;\n";

const WRITE: &str = "format:\n\
\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:const char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n";

const READ: &str = "format:\n\
\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:char * buf;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;\n";

const EXEC: &str = "format:\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n";

fn tracepoint(text: &str, format: &str, category: &str) -> Result<Vec<Capture>, CaptureError> {
    let fields = tracefs::parse_format(format);
    let (_, args) = tracefs::probe_config(&fields);
    plan(
        &spec(text),
        Known::Tracepoint {
            fields: &fields,
            args: &args,
            category,
        },
        64,
    )
}

#[test]
fn the_syntax() {
    let s = spec("uprobe:/bin/x:f(arg0:str, arg1:buf(arg2))");
    assert_eq!(
        s.location,
        crate::probe::spec::Location::User {
            path: "/bin/x".into(),
            symbol: "f".into(),
            offset: 0
        },
        "the captures are not part of the symbol"
    );
    assert_eq!(
        s.captures,
        [
            Decl {
                field: FieldName::Arg(0),
                buf: None
            },
            Decl {
                field: FieldName::Arg(1),
                buf: Some(Len::Field(FieldName::Arg(2)))
            }
        ]
    );
    let s = spec("name=kretprobe:do_sys_openat2(ret:buf(16))");
    assert_eq!(s.alias.as_deref(), Some("name"));
    assert_eq!(s.captures[0].buf, Some(Len::Bytes(16)));
    assert_eq!(
        spec("tracepoint:syscalls:sys_enter_write( buf : buf(count) )").captures[0].field,
        FieldName::Named("buf".into())
    );
    for bad in [
        "kprobe:f(arg1)",
        "kprobe:f(arg1:int)",
        "kprobe:f(arg1:str",
        "kprobe:f(arg1:buf())",
        "kprobe:f(1x:str)",
        "kprobe:f(arg1:buf(arg2)",
        "kprobe:f()",
    ] {
        let e = spec_err(bad);
        assert!(
            e.contains("bad capture") && e.contains("FIELD:str"),
            "{bad}: {e}"
        );
    }
    assert!(spec_err("kprobe:f(arg1:str, arg1:buf(8))").contains("twice"));
    assert!(
        spec_err("kprobe:f(arg0:str,arg1:str,arg2:str,arg3:str,arg4:str)").contains("more than 4")
    );
    assert!(spec_err("rawtp:sys_enter(arg0:str)").contains("raw tracepoint"));
}

#[test]
fn tracepoints_capture_their_strings_by_themselves() {
    let c = tracepoint("tracepoint:syscalls:sys_enter_openat", OPENAT, "syscalls").unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].name.as_str(), c[0].word), ("filename", 1));
    assert_eq!((c[0].kind, c[0].memory), (CaptureKind::Str, Memory::User));
    let w = tracepoint("tracepoint:syscalls:sys_enter_write", WRITE, "syscalls").unwrap();
    assert_eq!(
        (w[0].kind, w[0].len_word),
        (CaptureKind::Buf, Some(2)),
        "buf(count)"
    );
    assert!(
        tracepoint("tracepoint:syscalls:sys_enter_read", READ, "syscalls")
            .unwrap()
            .is_empty(),
        "read's buffer is filled by the call: nothing to read at entry"
    );
    let e = tracepoint("tracepoint:sched:sched_process_exec", EXEC, "sched").unwrap();
    assert_eq!(
        (e[0].kind, e[0].memory),
        (CaptureKind::DataLoc, Memory::Kernel)
    );
    let k = e[0].spec();
    assert_eq!(
        (k.kind, k.src),
        (snapshot_common::strings::kind::DATA_LOC, 0)
    );
    let declared = tracepoint(
        "tracepoint:syscalls:sys_enter_read(buf:buf(count))",
        READ,
        "syscalls",
    )
    .unwrap();
    assert_eq!(declared[0].kind, CaptureKind::Buf, "declared, it is read");
    let e = tracepoint(
        "tracepoint:syscalls:sys_enter_openat(flags:str)",
        OPENAT,
        "syscalls",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`flags` is `int`, not a pointer"),
        "{e}"
    );
    let e = tracepoint(
        "tracepoint:syscalls:sys_enter_openat(path:str)",
        OPENAT,
        "syscalls",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("no argument `path`") && e.to_string().contains("dfd, filename"),
        "{e}"
    );
    let e = tracepoint(
        "tracepoint:syscalls:sys_enter_openat(ret:str)",
        OPENAT,
        "syscalls",
    )
    .unwrap_err();
    assert!(e.to_string().contains("no return value"), "{e}");
    let e = tracepoint(
        "tracepoint:syscalls:sys_enter_write(buf:buf(5000))",
        WRITE,
        "syscalls",
    )
    .unwrap_err();
    assert!(e.to_string().contains("buf(5000) is out of range"), "{e}");
    assert!(
        tracepoint(
            "tracepoint:syscalls:sys_enter_write(buf:buf(0))",
            WRITE,
            "syscalls"
        )
        .is_err()
    );
}

fn openat2() -> Prototype {
    Prototype {
        params: vec![
            (
                "dfd".into(),
                Type::Int {
                    signed: true,
                    size: 4,
                },
            ),
            (
                "filename".into(),
                Type::Pointer {
                    char: true,
                    user: true,
                },
            ),
            (
                "how".into(),
                Type::Pointer {
                    char: false,
                    user: false,
                },
            ),
        ],
        ret: Type::Int {
            signed: true,
            size: 8,
        },
    }
}

#[test]
fn kernel_functions_use_their_btf() {
    let p = openat2();
    let f = plan(&spec("fentry:do_sys_openat2"), Known::Function(&p), 64).unwrap();
    assert_eq!(f.len(), 1, "fentry: char * arguments by themselves");
    assert_eq!(
        (f[0].name.as_str(), f[0].word, f[0].memory),
        ("filename", 1, Memory::User)
    );
    assert!(
        plan(&spec("kprobe:do_sys_openat2"), Known::Function(&p), 64)
            .unwrap()
            .is_empty(),
        "kprobes capture what they declare"
    );
    let k = plan(
        &spec("kprobe:do_sys_openat2(arg1:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap();
    assert_eq!(
        (k[0].name.as_str(), k[0].memory),
        ("filename", Memory::User)
    );
    let k = plan(
        &spec("kprobe:do_sys_openat2(filename:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap();
    assert_eq!(k[0].word, 1, "by parameter name");
    let e = plan(
        &spec("kprobe:do_sys_openat2(arg0:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`arg0` is an integer, not a pointer"),
        "{e}"
    );
    let e = plan(
        &spec("kprobe:do_sys_openat2(arg4:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap_err();
    assert!(e.to_string().contains("arg2 (how)"), "{e}");
    let e = plan(
        &spec("kretprobe:do_sys_openat2(arg1:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap_err();
    assert!(e.to_string().contains("sees only `ret`"), "{e}");
    let e = plan(
        &spec("kretprobe:do_sys_openat2(ret:str)"),
        Known::Function(&p),
        64,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a pointer"), "{e}");
    let x = plan(
        &spec("fexit:do_sys_openat2(arg2:buf(ret))"),
        Known::Function(&p),
        64,
    )
    .unwrap();
    assert_eq!(
        (x[0].kind, x[0].len_word, x.len()),
        (CaptureKind::Buf, Some(SRC_RET), 2),
        "fexit sees the arguments and ret"
    );
}

#[test]
fn user_probes_and_capture_off() {
    let u = plan(
        &spec("uprobe:/bin/x:f(arg0:str, arg1:buf(arg2))"),
        Known::Nothing,
        64,
    )
    .unwrap();
    assert_eq!(u[1].spec().len_src, 2);
    let r = plan(
        &spec("uretprobe:/bin/bash:readline(ret:str)"),
        Known::Nothing,
        64,
    )
    .unwrap();
    assert_eq!(r[0].word, SRC_RET);
    let e = plan(&spec("uprobe:/bin/x:f(arg6:str)"), Known::Nothing, 64).unwrap_err();
    assert!(e.to_string().contains("arg0 to arg5"), "{e}");
    let e = plan(&spec("uprobe:/bin/x:f(name:str)"), Known::Nothing, 64).unwrap_err();
    assert!(e.to_string().contains("write argN"), "{e}");
    let e = plan(&spec("uprobe:/bin/x:f(ret:str)"), Known::Nothing, 64).unwrap_err();
    assert!(e.to_string().contains("no return value"), "{e}");
    let e = plan(&spec("uprobe:/bin/x:f(arg0:str)"), Known::Nothing, 0).unwrap_err();
    assert!(e.to_string().contains("--string-size 0"), "{e}");
    assert!(
        plan(
            &spec("fentry:do_sys_openat2"),
            Known::Function(&openat2()),
            0
        )
        .unwrap()
        .is_empty(),
        "--string-size 0 captures nothing"
    );
}
