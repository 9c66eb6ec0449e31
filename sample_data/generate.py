"""Generate the synthetic sample data set (fixed seed, so it is the same every run).

    python sample_data/generate.py [--people 400] [--seed 2026] [--out sample_data/incidents.csv]

Shaped like the published figures in shared/docs/domain.md (Bristol's first
months of the Drug Education Programme, Durham's Checkpoint): about 80% of
those offered take it up and complete; over half the cases are cannabis,
about a quarter cocaine or MDMA, the rest heroin, crack, amphetamine,
ketamine, mushrooms, 2C-B and class C drugs; about one in ten is a young
person (10–17). Some people are caught again later and are refused (one shot);
a few are recorded under another spelling of their name. Nobody here is real.
The big benchmark data set uses the same generator with --people 1000000.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

COLUMNS = ("surname", "forenames", "dob", "pnc", "gender", "ethnicity", "occurred_at", "substances", "quantity",
           "location", "co_offences", "supply_suspected", "recorded_by", "scheme", "referral_status",
           "offered_at", "accepted_at", "closed_at", "outcome_reason")

SURNAMES = ("Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson Thompson "
            "Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood Turner Martin "
            "Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James Scott Phillips "
            "Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson Bailey "
            "Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson Simpson Ellis Adams Singh "
            "Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali Hunt Hussain Campbell Matthews "
            "Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Okafor "
            "Mensah Nowak Kowalski Ahmed Rahman Chen Nguyen O'Brien McCarthy Ó Súilleabháin").split()
MALE = ("Jack Harry Oliver Charlie James George Thomas Jacob Alfie Joshua William Daniel Samuel Joseph Ryan "
        "Connor Liam Callum Kieran Jordan Lewis Mohammed Ali Adam Tyler Kyle Dean Lee Craig Scott Jamie Luke "
        "Nathan Aaron Reece Kwame Tomasz Ahmed Zain").split()
FEMALE = ("Olivia Amelia Emily Isla Ava Jessica Sophie Chloe Lily Ella Grace Mia Lucy Megan Holly Hannah "
          "Jade Leah Amy Laura Zoë Aisha Fatima Chantelle Shannon Kayleigh Natalia").split()
# Published mix (domain.md): over half cannabis, about a quarter cocaine or MDMA, then the rest.
SUBSTANCES = [("cannabis", 53), ("cocaine", 15), ("MDMA", 9), ("ketamine", 5), ("crack", 3), ("heroin", 3),
              ("speed", 3), ("magic mushrooms", 2), ("2C-B", 1), ("nitrous oxide", 3), ("benzos", 2),
              ("LSD", 1)]
STREET = {"cannabis": ["cannabis", "weed", "skunk", "cannabis resin"], "cocaine": ["cocaine", "coke"],
          "MDMA": ["MDMA", "ecstasy", "mandy"]}
ETHNICITY = [("W1", 68), ("W2", 1), ("W3", 1), ("W9", 5), ("M1", 2), ("M2", 1), ("M3", 1), ("M9", 1),
             ("A1", 2), ("A2", 3), ("A3", 1), ("A4", 1), ("A9", 1), ("B1", 3), ("B2", 3), ("B9", 1),
             ("O2", 1), ("O9", 1), ("NS", 3)]
LOCATIONS = ["Stokes Croft", "Cabot Circus", "Broadmead", "Temple Meads", "Harbourside", "Bedminster",
             "Clifton Triangle", "St Pauls", "Easton", "Weston-super-Mare seafront", "Bath city centre",
             "Kingswood", "Glastonbury Festival site", "Taunton town centre"]
CO_OFFENCES = ["theft from a shop", "criminal damage", "public order offence", "common assault",
               "possession of a bladed article"]
OFFICERS = [f"{n}" for n in range(1001, 1061)] + ["PC2210", "PC3307"]
CHECK = "ZABCDEFGHJKLMNPQRTUVWXY"


def weighted(rng: random.Random, pairs):
    names, weights = zip(*pairs)
    return rng.choices(names, weights)[0]


def pnc_for(rng: random.Random, birth_year: int) -> str:
    year = rng.randint(max(birth_year + 10, 1975), 2025)
    serial = f"{rng.randint(0, 9_999_999):07d}"
    return f"{year}/{serial}{CHECK[int(f'{year % 100:02d}' + serial) % 23]}"


def moment(rng: random.Random, start: date, end: date) -> datetime:
    day = start + timedelta(days=rng.randrange((end - start).days))
    hour = rng.choice([0, 1, 2, 14, 16, 18, 19, 20, 21, 22, 23])
    return datetime(day.year, day.month, day.day, hour, rng.randrange(60))


def iso(value: datetime | date | None) -> str:
    if value is None:
        return ""
    return value.isoformat(sep=" ", timespec="minutes") if isinstance(value, datetime) else value.isoformat()


def make_person(rng: random.Random, when: datetime) -> dict:
    youth = rng.random() < 0.10
    age = rng.randint(13, 17) if youth else min(70, 18 + int(rng.expovariate(1 / 9)))
    birthday = when.date() - timedelta(days=age * 365 + rng.randrange(1, 360))
    male = rng.random() < 0.82
    return {"surname": rng.choice(SURNAMES), "forenames": rng.choice(MALE if male else FEMALE),
            "dob": birthday, "pnc": pnc_for(rng, birthday.year) if rng.random() < 0.6 and not youth else "",
            "gender": "M" if male else ("F" if rng.random() < 0.97 else "X"),
            "ethnicity": weighted(rng, ETHNICITY)}


def misspell(rng: random.Random, person: dict) -> dict:
    """The same person under another spelling, as happens from one arrest to the next."""
    variant = dict(person, pnc="")
    swaps = {"Smith": "Smyth", "Mohammed": "Muhammad", "Thompson": "Thomson", "Clarke": "Clark",
             "Jon": "John", "Hussain": "Hussein", "Stevens": "Stephens", "Davies": "Davis"}
    if person["surname"] in swaps:
        variant["surname"] = swaps[person["surname"]]
    elif person["forenames"] in swaps:
        variant["forenames"] = swaps[person["forenames"]]
    elif person["dob"].day <= 12 and person["dob"].day != person["dob"].month:
        variant["dob"] = person["dob"].replace(month=person["dob"].day, day=person["dob"].month)
    else:
        variant["surname"], variant["forenames"] = person["forenames"], person["surname"]
    return variant


def referral_for(rng: random.Random, scheme: str, when: datetime, as_of: datetime) -> dict:
    offered = when + timedelta(days=rng.randint(0, 3), hours=rng.randint(1, 10))
    roll = rng.random()
    accepted = offered + timedelta(days=rng.randint(1, 7))
    # a workshop is done within weeks; a contract runs its full four months
    finish = accepted + timedelta(days=rng.randint(7, 48) if scheme != "checkpoint" else rng.randint(112, 120))
    if scheme == "checkpoint":  # no earlier than the contract's end: its conditions run that long
        from dateutil.relativedelta import relativedelta

        finish = max(finish, offered + relativedelta(months=4))
    if roll < 0.06:  # declined at the offer
        return {"referral_status": "declined", "offered_at": offered, "closed_at": accepted,
                "outcome_reason": "declined the offer"}
    if finish > as_of:  # still in progress
        return {"referral_status": "accepted" if accepted <= as_of else "offered", "offered_at": offered,
                "accepted_at": accepted if accepted <= as_of else None}
    if roll < 0.16:
        reason = "breached contract condition" if scheme == "checkpoint" else "did not attend the workshop"
        return {"referral_status": "failed", "offered_at": offered, "accepted_at": accepted, "closed_at": finish,
                "outcome_reason": reason}
    return {"referral_status": "completed", "offered_at": offered, "accepted_at": accepted, "closed_at": finish}


def generate(people: int, seed: int, start: date, end: date, out, caught_again: float = 0.14) -> int:
    rng = random.Random(seed)
    as_of = datetime.combine(end, datetime.min.time())
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows, seen = [], set()
    for _ in range(people):
        when = moment(rng, start, end)
        person = make_person(rng, when)
        while (person["surname"], person["forenames"], person["dob"]) in seen:
            person["dob"] -= timedelta(days=rng.randint(1, 900))  # two real people, not one
            if (when.date() - person["dob"]).days > 75 * 365:
                person["dob"] = when.date() - timedelta(days=18 * 365 + rng.randrange(365))
        seen.add((person["surname"], person["forenames"], person["dob"]))
        while person["pnc"] and person["pnc"] in seen:
            person["pnc"] = pnc_for(rng, person["dob"].year)
        seen.add(person["pnc"])
        incidents = [when]
        if rng.random() < caught_again:  # caught again later
            later = when + timedelta(days=rng.randint(20, 200))
            if later.date() < end:
                incidents.append(later)
        diverted = False
        for n, at in enumerate(incidents):
            who = misspell(rng, person) if n and rng.random() < 0.25 else person
            if who is not person:
                if (who["surname"], who["forenames"], who["dob"]) in seen:
                    who = person  # the misspelling would be someone else's exact identity
                else:
                    seen.add((who["surname"], who["forenames"], who["dob"]))
            born, day = who["dob"], at.date()  # as written in the row (a variant may swap day and month)
            age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
            substance = weighted(rng, SUBSTANCES)
            entered = rng.choice(STREET.get(substance, [substance]))
            co = rng.choice(CO_OFFENCES) if rng.random() < 0.07 else ""
            supply = rng.random() < 0.04
            row = {**{k: iso(v) if isinstance(v, (date, datetime)) else v for k, v in who.items()},
                   "occurred_at": iso(at), "substances": entered,
                   "quantity": rng.choice(["", "1 g", "2 g", "3.5 g", "one wrap", "two pills", "small bag"]),
                   "location": rng.choice(LOCATIONS), "co_offences": co, "supply_suspected": "yes" if supply else "",
                   "recorded_by": rng.choice(OFFICERS)}
            eligible = not supply and not diverted
            scheme = None
            if eligible and age < 18 and not co:
                scheme = "dep-youth"
            elif eligible and age >= 18 and not co:
                scheme = "checkpoint" if rng.random() < 0.12 else "dep-adult"
            if scheme:
                referral = referral_for(rng, scheme, at, as_of)
                row.update({k: iso(v) if isinstance(v, datetime) else v for k, v in referral.items()})
                row["scheme"] = scheme
                diverted = referral["referral_status"] in ("accepted", "completed", "failed")
                if referral["referral_status"] in ("offered", "accepted"):
                    diverted = True  # an open referral: no second one while it runs
            rows.append(row)
    rows.sort(key=lambda r: r["occurred_at"])
    writer.writerows(rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--start", default="2026-03-01")
    parser.add_argument("--end", default="2026-11-01")
    parser.add_argument("--caught-again", type=float, default=0.14,
                        help="share of people with a later incident (the benchmark uses more)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("incidents.csv")))
    args = parser.parse_args()
    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    if args.out == "-":
        n = generate(args.people, args.seed, start, end, sys.stdout, args.caught_again)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            n = generate(args.people, args.seed, start, end, out, args.caught_again)
    print(f"wrote {n} incidents for {args.people} people to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
