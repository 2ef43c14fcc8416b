"""Realistic, reproducible CRM data for the emulators: owners, accounts, contacts and deals.

The generator is CRM-neutral; each emulator turns a `SeedData` into its own objects. Faker
fills name pools once per seed, and deals are drawn from the pools with a seeded RNG, so
50,000 deals take well under a second and the same seed always gives the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from faker import Faker

LOSS_REASONS = (
    ("Lost to competitor", 30),
    ("Price", 20),
    ("No decision", 18),
    ("No budget", 12),
    ("Timing", 8),
    ("Disqualified", 7),
    ("Went with competitor on price", 5),
)
COMPETITORS = ("Globex", "Initech", "Hooli", "Umbrella", "Stark Industries", "Wayne Enterprises",
               "Soylent", "Vandelay Industries")
PRODUCTS = ("Platform", "Expansion", "Renewal", "Pilot", "Enterprise")
ROLES = ("Decision Maker", "Economic Buyer", "Evaluator", "Technical Buyer", "Influencer", None)
OWNER_ZONES = (
    ("America/New_York", "US"), ("America/Chicago", "US"), ("America/Los_Angeles", "US"),
    ("Europe/London", "GB"), ("Europe/Berlin", "DE"), ("Australia/Sydney", "AU"),
)


@dataclass(frozen=True)
class SeedOwner:
    index: int
    first_name: str
    last_name: str
    email: str
    active: bool
    timezone: str
    country: str


@dataclass(frozen=True)
class SeedAccount:
    index: int
    name: str
    domain: str


@dataclass(frozen=True)
class SeedContact:
    index: int
    account: int
    first_name: str
    last_name: str
    email: str
    opted_out: bool


@dataclass(frozen=True)
class SeedDeal:
    index: int
    name: str
    account: int
    owner: int
    state: str  # "lost" | "won" | "open"
    close_date: date
    amount: float | None
    loss_reason: str | None
    competitor: str | None
    contract_end: date | None
    contacts: tuple[tuple[int, str | None], ...]  # (contact index, role)
    created_at: datetime
    modified_at: datetime


@dataclass
class SeedData:
    owners: list[SeedOwner] = field(default_factory=list)
    accounts: list[SeedAccount] = field(default_factory=list)
    contacts: list[SeedContact] = field(default_factory=list)
    deals: list[SeedDeal] = field(default_factory=list)


def generate(
    deals: int,
    *,
    seed: int = 0,
    now: datetime | None = None,
    lost_share: float = 0.8,
    won_share: float = 0.1,
    owners: int = 20,
    inactive_owners: int = 2,
    days_back: int = 400,
) -> SeedData:
    """Make `deals` deals (about `lost_share` closed-lost) over `days_back` days before `now`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    first_names = [fake.first_name() for _ in range(300)]
    last_names = [fake.last_name() for _ in range(300)]
    n_accounts = max(1, deals // 2)
    company_pool = [fake.company() for _ in range(min(n_accounts, 2000))]

    data = SeedData()
    for i in range(owners):
        zone, country = OWNER_ZONES[i % len(OWNER_ZONES)]
        first, last = rng.choice(first_names), rng.choice(last_names)
        data.owners.append(SeedOwner(
            index=i, first_name=first, last_name=last,
            email=f"{first}.{last}.{i}@seller.example".lower(),
            active=i >= inactive_owners, timezone=zone, country=country,
        ))
    for i in range(n_accounts):
        base = company_pool[i % len(company_pool)]
        name = base if i < len(company_pool) else f"{base} {i // len(company_pool) + 1}"
        slug = "".join(ch for ch in base.lower() if ch.isalnum())[:20] or "acct"
        data.accounts.append(SeedAccount(index=i, name=name, domain=f"{slug}{i}.example"))

    contacts_by_account: dict[int, list[int]] = {}
    for acct in data.accounts:
        for _ in range(rng.randint(0, 4)):
            first, last = rng.choice(first_names), rng.choice(last_names)
            index = len(data.contacts)
            data.contacts.append(SeedContact(
                index=index, account=acct.index, first_name=first, last_name=last,
                email=f"{first}.{last}.{index}@{acct.domain}".lower(),
                opted_out=rng.random() < 0.05,
            ))
            contacts_by_account.setdefault(acct.index, []).append(index)

    reasons = [r for r, _ in LOSS_REASONS]
    weights = [w for _, w in LOSS_REASONS]
    for i in range(deals):
        account = rng.randrange(n_accounts)
        roll = rng.random()
        state = "lost" if roll < lost_share else "won" if roll < lost_share + won_share else "open"
        close = (now - timedelta(days=rng.randint(0, days_back))).date()
        created = datetime.combine(close - timedelta(days=rng.randint(20, 200)),
                                   datetime.min.time(), tzinfo=UTC) \
            + timedelta(seconds=rng.randint(0, 86399))
        modified = min(now, datetime.combine(close, datetime.min.time(), tzinfo=UTC)
                       + timedelta(seconds=rng.randint(0, 86399 * 3)))
        reason = rng.choices(reasons, weights)[0] if state == "lost" else None
        competitor = rng.choice(COMPETITORS) if reason and "competitor" in reason.lower() else None
        contract_end = (close + timedelta(days=rng.choice((365, 730, 1095)))
                        if competitor and rng.random() < 0.6 else None)
        pool = contacts_by_account.get(account, [])
        picked = rng.sample(pool, k=min(len(pool), rng.randint(0, 3)))
        data.deals.append(SeedDeal(
            index=i,
            name=f"{data.accounts[account].name} - {rng.choice(PRODUCTS)}",
            account=account,
            owner=rng.randrange(owners),
            state=state,
            close_date=close if state != "open" else close + timedelta(days=60),
            amount=float(rng.randrange(1000, 250000, 500)) if rng.random() > 0.03 else None,
            loss_reason=reason,
            competitor=competitor,
            contract_end=contract_end,
            contacts=tuple((c, rng.choice(ROLES)) for c in picked),
            created_at=created,
            modified_at=max(modified, created),
        ))
    return data
