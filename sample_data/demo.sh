#!/bin/sh
# A first look at diversion with the synthetic sample data: load it, then walk
# through a custody-desk night. Uses ./demo.db (or $DIVERSION_DB), never your real data.
set -u
DIVERSION_DB="${DIVERSION_DB:-demo.db}"
DIVERSION_OFFICER="${DIVERSION_OFFICER:-4471}"
export DIVERSION_DB DIVERSION_OFFICER
here=$(dirname "$0")
bin=${DIVERSION_BIN:-diversion}
# bold headings only on a terminal: a log or a pipe gets plain text
if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); else bold=; plain=; fi
step() { printf '\n%s== %s%s\n$ diversion %s\n' "$bold" "$1" "$plain" "$(echo "$2")"; }
run() { step "$1" "$2"; shift 2; "$bin" "$@"; echo "(exit $?)"; }

rm -f "$DIVERSION_DB" "$DIVERSION_DB-wal" "$DIVERSION_DB-shm"
run "Create the database (only db init ever creates one)" "db init" db init
run "Load eight months of synthetic history" "import $here/incidents.csv" import "$here/incidents.csv"
run "A new arrest: record it and offer the diversion at once" \
    "record --surname Okoro --forename Daniel --dob 14/02/1999 --pnc 1999/0123456X --substance weed --refer" \
    record --surname Okoro --forename Daniel --dob 14/02/1999 --pnc 1999/0123456X --gender M --ethnicity B2 \
    --substance weed --location "Stokes Croft" --refer
run "The coordinator's queue of open referrals due within a week" "referrals --due-within 7" referrals --due-within 7
run "He attends the workshop" "outcome R-… accepted / completed" \
    outcome "$("$bin" referrals --json | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin) if r["name"].startswith("Okoro")][0])')" accepted
ref=$("$bin" check 1999/0123456X --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["referrals"][-1]["id"])')
"$bin" outcome "$ref" completed
run "The letter that proves the offence was dropped" "letter $ref --kind completion" letter "$ref" --kind completion
run "Caught again a month later: the one shot has been used" "check 1999/0123456X" check 1999/0123456X
run "Recorded anyway, under another spelling: the desk is warned and refuses a new person" \
    "record --surname Okoro --forename Danny --dob 1999-02-14 --substance coke" \
    record --surname Okoro --forename Danny --dob 1999-02-14 --substance coke
run "Checking by name shows the possible same person" "check --surname Okoro --forename Danny --dob 1999-02-14" \
    check --surname Okoro --forename Danny --dob 1999-02-14
run "A person never seen before is eligible" "check --surname Nowak --forename Ewa --dob 1990-03-04" \
    check --surname Nowak --forename Ewa --dob 1990-03-04
run "The analyst's figures for the whole period, small counts suppressed for publication" \
    "report --from 2026-03-01 --to 2026-10-31 --by drug_class --suppress 5" \
    report --from 2026-03-01 --to 2026-10-31 --by drug_class --suppress 5
echo
echo "Demo database: $DIVERSION_DB (delete it when done)."
