#!/bin/sh
# Refuse to start a container whose secrets are still the placeholders of .env.example (or empty), then run the
# container's real entrypoint: `check-secrets.sh <entrypoint> [args...]`.
#
# Which variables: the names in $SVP_CREDENTIAL_VARS (space-separated), set per service in docker-compose.yml.
# A value is refused when it is unset or empty, or contains the placeholder marker `change-me` that every secret
# placeholder of .env.example carries (tests/integration/deployment/ holds .env.example to that). A value that is a URL with
# credentials (scheme://user:password@host/...) is judged by its password, so a connection string built from an
# empty or placeholder password is refused too. An empty $SVP_CREDENTIAL_VARS is refused as well: a service that
# forgot to name its secrets must not pass silently.
#
# POSIX sh on purpose: it also runs in the third-party images (postgres, redis, minio), bind-mounted read-only.
set -eu

PLACEHOLDER_MARKER="change-me"

password_in_url() {
    # Prints the password of scheme://user:password@host..., and fails when the value carries no credentials.
    case "$1" in
        *://*@*) ;;
        *) return 1 ;;
    esac
    rest=${1#*://}
    userinfo=${rest%%@*}
    case "$userinfo" in
        *:*) printf '%s' "${userinfo#*:}" ;;
        *) printf '' ;;
    esac
}

problem_with() {
    # Prints why the variable named $1 cannot be used, or nothing when it can.
    name=$1
    if ! eval "[ \"\${$name+set}\" = set ]"; then
        echo "$name is not set"
        return
    fi
    eval "value=\${$name}"
    if secret=$(password_in_url "$value"); then
        what="the password in $name"
    else
        secret=$value
        what=$name
    fi
    if [ -z "$secret" ]; then
        echo "$what is empty"
    else
        case "$secret" in
            *"$PLACEHOLDER_MARKER"*) echo "$what is still the .env.example placeholder" ;;
        esac
    fi
}

names=${SVP_CREDENTIAL_VARS:-}
if [ -z "$(echo "$names" | tr -d ' ')" ]; then
    echo "check-secrets: SVP_CREDENTIAL_VARS names no variables; refusing to start (docker-compose.yml sets it" \
         "per service)" >&2
    exit 78
fi

failed=0
for name in $names; do
    case "$name" in
        *[!A-Za-z0-9_]* | [0-9]*)
            echo "check-secrets: '$name' in SVP_CREDENTIAL_VARS is not a variable name" >&2
            failed=1
            continue
            ;;
    esac
    why=$(problem_with "$name")
    if [ -n "$why" ]; then
        echo "check-secrets: $why" >&2
        failed=1
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "check-secrets: refusing to start. Put real values in .env (docs/deployment.md, 'Run it', has one-liners" \
         "that generate them), then run: docker compose up -d" >&2
    exit 78  # EX_CONFIG
fi

if [ "$#" -eq 0 ]; then
    echo "check-secrets: secrets look real; no command given to run" >&2
    exit 0
fi
exec "$@"
