#!/usr/bin/env bash
# The README's curl walk-through: one consult's whole life through the API.
# Run it against `make run` (demo data loaded): bash docs/walkthrough.sh [http://127.0.0.1:5000]
set -euo pipefail
B="${1:-http://127.0.0.1:5000}/api"

# call TOKEN METHOD PATH [JSON]: one API call; prints the JSON answer, fails on an HTTP error.
call() {
  curl -sS --fail-with-body -X "$2" "$B$3" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' ${4:+-d "$4"}
}
# field EXPR: print a Python expression over the JSON answer `d`, e.g. field 'd["id"]'.
field() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
token() {
  curl -sS --fail-with-body "$B/tokens" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"consult-demo\"}" | field 'd["token"]'
}

PATEL=$(token patel@demo.test)        # a hospitalist who needs radiology's opinion
CASTILLO=$(token castillo@demo.test)  # a radiologist
NGUYEN=$(token nguyen@demo.test)      # a radiology colleague taking over

echo "1. Dr Patel sends a stat consult to radiology"
ID=$(call "$PATEL" POST /consults '{"department": "radiology", "urgency": "stat",
  "patient_ref": "MRN-0042", "study_ref": "ACC-9001",
  "question": "CT abdomen: is there a drainable collection?"}' | field 'd["id"]')
echo "   consult $ID"

echo "2. Dr Castillo claims it: he is now the one accountable owner"
call "$CASTILLO" POST "/consults/$ID/claim" | field 'd["owner"]["name"]'

echo "3. His shift ends: he offers it to Dr Nguyen (nothing changes until she accepts)"
NGUYEN_ID=$(call "$NGUYEN" GET /me | field 'd["id"]')
call "$CASTILLO" POST "/consults/$ID/handoff" \
  "{\"to_user_id\": $NGUYEN_ID, \"note\": \"Prior CT is in PACS.\"}" | field 'd["handoff"]["to"]["name"]'

echo "4. Dr Nguyen accepts: she is the owner now"
call "$NGUYEN" POST "/consults/$ID/handoff/accept" | field 'd["owner"]["name"]'

echo "5. She answers"
call "$NGUYEN" POST "/consults/$ID/answer" \
  '{"body": "Yes: 4 cm collection, safe window for drainage."}' | field 'd["status"]'

echo "6. Dr Patel asks a follow-up: back to the same owner, with a new answer deadline"
call "$PATEL" POST "/consults/$ID/messages" '{"body": "Is it loculated?"}' \
  | field 'd["status"] + ", owner " + d["owner"]["name"] + ", answer due " + d["answer_due_at"]'

echo "7. She answers again"
call "$NGUYEN" POST "/consults/$ID/answer" '{"body": "Single locule."}' | field 'd["status"]'

echo "8. Dr Patel closes it with a rating"
call "$PATEL" POST "/consults/$ID/close" '{"rating": 5, "comment": "Quick and clear."}' \
  | field 'd["status"]'

echo "9. The whole timeline, oldest first"
call "$PATEL" GET "/consults/$ID" | python3 -c '
import json, sys
for event in json.load(sys.stdin)["timeline"]:
    actor = event["actor"]["name"] if event["actor"] else "system"
    print("  ", event["at"][:19], event["kind"].ljust(17), actor.ljust(18), event["body"] or "")'
