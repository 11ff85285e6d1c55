"""Schemathesis hooks for Gridlight's contract run (.ci/schemathesis.sh).

One extra check, `rejections_name_a_rule_beyond_the_schema`. Schemathesis' own
`positive_data_acceptance` check is told (schemathesis.toml) to let 422 through, because some
rules of the API cannot be written in JSON Schema: they depend on the database, the clock, a
checksum, another field or a secret. This check keeps the rest of that check's strength: a
request schemathesis generated as *valid* may only be refused with 422 when every field error
names one of the rules below. Any other 422 on valid data means the document is looser than the
server, which is a bug in the document (or the server) to fix.
"""

import re

import schemathesis

# (field, code) of every 422 that a schema-valid request can still get, and why the document
# cannot state the rule. Fields are regular expressions over the `field` of the error.
RULES_BEYOND_THE_SCHEMA = [
    # Opaque: only cursors and sync tokens the server issued mean anything.
    (r"cursor|since", "invalid"),
    # "Not only whitespace or invisible characters": JSON Schema engines disagree on what
    # whitespace is (ECMA-262 \s, Unicode White_Space, Python's str.isspace), so no pattern
    # states it the same for all.
    (r".*", "blank"),
    # GB 11643-1999 check character, and agreement with birth_date and gender.
    (r"id_number", "checksum|birth_date|birth_date_mismatch|gender_mismatch"),
    # Relative to today, or outside the years the service accepts (1900-2100): a date-time
    # format cannot bound its range.
    (r"birth_date", "out_of_range"),
    # A member's stored ID number holds the birth date: a birth date alone is refused while it
    # has one, whatever its value (the stored one is masked, so it is never compared).
    (r"birth_date", "id_number_required"),
    (r"visited_at|from|to|updated_since|due_before", "out_of_range"),
    (r"visited_at", "in_future|too_old"),
    # References to records that must exist in the caller's scope, with the right role.
    (r"grid_id", "unknown"),
    (r"community_id", "unknown|required|not_allowed"),
    # An account's unit follows its role (a street officer's street, a district officer's
    # district, nothing else), and a community's street lies in the community's district.
    (r"street_id|district_id", "unknown|required|not_allowed"),
    (r"street_id", "other_district"),
    (r"workers\[\d+\]\.user_id", "unknown|not_a_grid_worker|inactive|duplicate"),
    (r"assignee_id", "not_a_grid_worker"),
    # Rules across fields or items.
    (r"workers", "two_primaries"),
    # A device's operation ids, each once a push (JSON Schema's uniqueItems is over whole items).
    (r"operations\[\d+\]\.op_id", "duplicate"),
    (r"reasons", "required"),
    # An import's commit: a removal reason goes with remove_missing=true and only with it (query
    # parameters cannot depend on each other in OpenAPI).
    (r"remove_missing|removal_reason", "required"),
    # A roll-up names one level: street_id or district_id, never both nor with community_id or
    # grid_id (query parameters, which JSON Schema cannot relate to each other).
    (r"street_id|district_id", "conflict"),
    (r"cancel_reason", "required"),
    (r"body", "empty"),
    (r"templates\[\d+\]\.kind", "duplicate_active_kind"),
    # The household's current state.
    (r"to_tag", "unchanged"),
    # A secret, and who is calling (nobody deactivates their own account).
    (r"current_password", "incorrect"),
    (r"active", "not_allowed"),
    # What an uploaded roster holds: a file's structure (a workbook's sheets, cells and
    # headers) is beyond what a binary string schema can state.
    (r"file", ".*"),
    # Catalogues outside the document: the community's division code, IANA timezones,
    # GB/T 2260 provinces.
    (r"code", "division_mismatch|other_district"),
    # A grid code's street digits (7-9) are those of its community's street code.
    (r"code", "street_mismatch"),
    (r"timezone", "unknown_timezone"),
    # A webhook's URL: the WHATWG URL grammar (hosts, IPv6 literals, percent-encoding, the
    # normalisations a parser applies) and the server's address policy (public addresses only
    # unless GRIDLIGHT_WEBHOOK_ALLOW_PRIVATE, an IP in any of its spellings) are beyond a pattern.
    (r"url", "not_allowed"),
    (r"division_code", "unknown_division"),
]

_RULES = [(re.compile(f), re.compile(c)) for f, c in RULES_BEYOND_THE_SCHEMA]


def _beyond_the_schema(error):
    field, code = str(error.get("field", "")), str(error.get("code", ""))
    return any(f.fullmatch(field) and c.fullmatch(code) for f, c in _RULES)


@schemathesis.check
def rejections_name_a_rule_beyond_the_schema(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        errors = []
    unexplained = [e for e in errors if not _beyond_the_schema(e)]
    if not errors or unexplained:
        raise AssertionError(
            "A schema-valid request was refused with 422 for a rule the document could state:\n"
            f"{unexplained or response.text}"
        )
    return None
