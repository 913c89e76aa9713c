"""The ``aia`` command: run any AIA process, migrate the database, submit work."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from aia_workers.backbone.states import Queue
from aia_workers.settings import get_settings

__all__ = ["main"]


def _exec_celery(args: Sequence[str], extra_env: Mapping[str, str] | None = None) -> None:
    # Replace this process so Celery receives signals (Ctrl-C, SIGTERM) directly.
    argv = [sys.executable, "-m", "celery", "-A", "aia_workers", *args]
    # Added to the process's own environment, which exec hands on whole, so
    # secrets such as Flower's password never appear in argv.
    for name, value in (extra_env or {}).items():
        os.putenv(name, value)
    os.execv(sys.executable, argv)  # noqa: S606 - a fixed argv, no shell


def _cmd_api(ns: argparse.Namespace) -> int:
    import uvicorn

    from aia_workers.logs.setup import uvicorn_log_config

    settings = get_settings()
    log_config = uvicorn_log_config(settings, ns.log_level)
    uvicorn.run(
        "aia_api.app:create_app_from_env",
        factory=True,
        host=ns.host or settings.api_host,
        port=ns.port or settings.api_port,
        workers=ns.workers,
        log_level=ns.log_level,
        access_log=ns.access_log,
        # The app honours forwarded headers from AIA_TRUSTED_PROXIES only.
        proxy_headers=False,
        log_config=log_config,
    )
    return 0


def _cmd_worker(ns: argparse.Namespace) -> int:
    from aia_workers.backbone.profiles import PROFILES

    profile = PROFILES[Queue(ns.queue)]
    args = profile.celery_args(hostname=ns.hostname)
    if ns.concurrency:
        args += ["-c", str(ns.concurrency)]
    _exec_celery([*args, "-l", ns.log_level])
    return 0


def _cmd_beat(ns: argparse.Namespace) -> int:
    # Schedules live in the database (celeryconfig's beat_scheduler), so no
    # schedule file is kept; any number of beats may run at once.
    scheduler = "aia_workers.scheduling.beat:DatabaseScheduler"
    _exec_celery(["beat", "-S", scheduler, "-l", ns.log_level])
    return 0


def _cmd_flower(ns: argparse.Namespace) -> int:
    settings = get_settings()
    port = ns.port or settings.flower_port
    args = ["flower", f"--port={port}", f"--address={ns.address}"]
    env: dict[str, str] = {}
    if settings.flower_basic_auth:
        # Through the environment, which Flower also reads: an argument would
        # show the password to anyone on the machine (`ps`, /proc/PID/cmdline).
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    elif not settings.dev:
        print(
            "Flower shows every task's arguments: set AIA_FLOWER_BASIC_AUTH=user:password "
            "(AIA_DEV=1 runs it open on a development machine)",
            file=sys.stderr,
        )
        return 2
    _exec_celery(args, env)
    return 0


def _cmd_exporter(ns: argparse.Namespace) -> int:
    from aia_api.cli.exporter import run_exporter

    return run_exporter(ns)


def _cmd_recorder(ns: argparse.Namespace) -> int:
    import logging

    from aia_api.cli.loops import run_until_stopped, stream_reader_client
    from aia_workers.backbone.recorder import Recorder
    from aia_workers.db.session import make_engine, make_sessionmaker
    from aia_workers.logs.setup import configure_logging
    from aia_workers.tracing.runtime import configure_tracing, flush

    settings = get_settings()
    configure_logging(settings, "aia-recorder", ns.log_level)
    configure_tracing(settings, "aia-recorder")
    client = stream_reader_client(settings)
    engine = make_engine(settings)
    recorder = Recorder(
        client,
        make_sessionmaker(engine),
        batch=settings.recorder_batch,
        linger_seconds=settings.recorder_linger_seconds,
    )
    logging.getLogger("aia.recorder").info(
        "recording task events to %s", engine.url.render_as_string()
    )
    try:
        run_until_stopped(recorder.run, name="aia-recorder")
    finally:
        engine.dispose()
        client.close()
        flush()
    return 0


def _cmd_db(ns: argparse.Namespace) -> int:
    from aia_workers.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings, ns.revision)
    print(f"database at {settings.database_url.split('@')[-1]} is at {ns.revision}")
    return 0


def _cmd_secrets_rotate(ns: argparse.Namespace) -> int:
    from aia_api.cli.secrets_at_rest import rotate

    return rotate(get_settings())


def _cmd_secrets_sign_models(ns: argparse.Namespace) -> int:
    from aia_api.cli.secrets_at_rest import sign_models

    return sign_models(get_settings(), every=ns.all)


def _cmd_dev(ns: argparse.Namespace) -> int:
    from aia_api.cli.dev import run_dev

    return run_dev(api_port=ns.port, flower_port=ns.flower_port)


def _cmd_users_create(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import create_user

    return create_user(
        get_settings(),
        tenant=ns.tenant,
        username=ns.username,
        role=ns.role,
        password_stdin=ns.password_stdin,
    )


def _cmd_users_set_role(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import set_role

    return set_role(get_settings(), username=ns.username, role=ns.role)


def _cmd_users_delete(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import delete_user

    return delete_user(get_settings(), username=ns.username)


def _cmd_users_reset_mfa(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import reset_mfa

    return reset_mfa(get_settings(), username=ns.username)


def _cmd_keys_create(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import create_key

    return create_key(
        get_settings(),
        tenant=ns.tenant,
        name=ns.name,
        role=ns.role,
        expires_in_days=ns.expires_in_days,
        never_expires=ns.never_expires,
    )


def _cmd_submit(ns: argparse.Namespace) -> int:
    from aia_api.cli.identity import read_credentials
    from aia_api.cli.submit import submit

    settings = get_settings()
    stored = read_credentials(settings)
    return submit(
        api=ns.api or stored.get("api_url") or settings.api_url,
        api_key=ns.api_key or stored.get("api_key"),
        task_type=ns.type,
        data=ns.data,
        watch=ns.watch,
        countdown=ns.countdown,
        priority=ns.priority,
        idempotency_key=ns.idempotency_key,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("api", help="run the HTTP API (uvicorn)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-access-log", dest="access_log", action="store_false")
    p.set_defaults(func=_cmd_api)

    p = sub.add_parser("worker", help="run a Celery worker for one queue")
    p.add_argument("--queue", required=True, choices=[q.value for q in Queue])
    p.add_argument("--concurrency", type=int, help="override the queue's default")
    p.add_argument("--hostname", help="Celery node name (default QUEUE@%%h)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("beat", help="run Celery beat (scheduled work)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_beat)

    p = sub.add_parser("flower", help="run Flower (queue monitoring)")
    p.add_argument("--port", type=int)
    p.add_argument("--address", default="127.0.0.1", help="interface to listen on")
    p.set_defaults(func=_cmd_flower)

    p = sub.add_parser("recorder", help="copy task events into the database")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_recorder)

    p = sub.add_parser("exporter", help="serve the workers' Prometheus metrics")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=9808, help="0 takes a free port")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_exporter)

    p = sub.add_parser("db", help="database migrations")
    db = p.add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="migrate the database to the latest schema")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_cmd_db)

    p = sub.add_parser("secrets", help="keys for what is kept at rest")
    keyed = p.add_subparsers(dest="secrets_command", required=True)
    rp = keyed.add_parser(
        "rotate",
        help="re-encrypt every stored secret (TOTP, webhook) under the first of "
        "AIA_ENCRYPTION_KEYS, and encrypt those stored before encryption",
    )
    rp.set_defaults(func=_cmd_secrets_rotate)
    sp = keyed.add_parser(
        "sign-models",
        help="sign the model versions stored before model files were signed, "
        "each after checking its file against its SHA-256",
    )
    sp.add_argument(
        "--all",
        action="store_true",
        help="sign every version again (after changing AIA_ARTIFACT_KEY)",
    )
    sp.set_defaults(func=_cmd_secrets_sign_models)

    roles = ["viewer", "operator", "admin"]
    p = sub.add_parser("users", help="manage users")
    users = p.add_subparsers(dest="users_command", required=True)
    up = users.add_parser("create", help="create a user (and its tenant if new)")
    up.add_argument("--tenant", required=True)
    up.add_argument("--username", required=True)
    up.add_argument("--role", choices=roles, default="operator")
    up.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of a prompt",
    )
    up.set_defaults(func=_cmd_users_create)
    sr = users.add_parser("set-role", help="change a user's role (recorded in the audit log)")
    sr.add_argument("--username", required=True)
    sr.add_argument("--role", choices=roles, required=True)
    sr.set_defaults(func=_cmd_users_set_role)
    dp = users.add_parser("delete", help="delete a user; their sessions and API keys end at once")
    dp.add_argument("--username", required=True)
    dp.set_defaults(func=_cmd_users_delete)
    mp = users.add_parser(
        "reset-mfa", help="turn a user's MFA off (a lost device) and end their sessions"
    )
    mp.add_argument("--username", required=True)
    mp.set_defaults(func=_cmd_users_reset_mfa)

    p = sub.add_parser("keys", help="manage API keys")
    keys = p.add_subparsers(dest="keys_command", required=True)
    kp = keys.add_parser("create", help="create an API key; printed once")
    kp.add_argument("--tenant", required=True)
    kp.add_argument("--name", required=True)
    kp.add_argument("--role", choices=roles, default="operator")
    lifetime = kp.add_mutually_exclusive_group()
    lifetime.add_argument(
        "--expires-in-days", type=int, help="default: AIA_API_KEY_DEFAULT_DAYS (90)"
    )
    lifetime.add_argument("--never-expires", action="store_true")
    kp.set_defaults(func=_cmd_keys_create)

    p = sub.add_parser("dev", help="run the whole system on this machine")
    p.add_argument("--port", type=int, help="API port (default 8000)")
    p.add_argument("--flower-port", type=int, help="Flower port (default 5555)")
    p.set_defaults(func=_cmd_dev)

    p = sub.add_parser("submit", help="submit a task over HTTP")
    p.add_argument("type", help="task type, e.g. diagnostics.sleep")
    p.add_argument("--data", default="{}", help="the payload as JSON")
    p.add_argument("--watch", action="store_true", help="show progress, then the result")
    p.add_argument("--countdown", type=float)
    p.add_argument("--priority", type=int)
    p.add_argument("--idempotency-key")
    p.add_argument("--api", help="API base URL (default: aia dev's, else AIA_API_HOST/PORT)")
    p.add_argument("--api-key", help="API key (default: the one aia dev keeps in the data home)")
    p.set_defaults(func=_cmd_submit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
