"""Demo data: a seeded, realistic set of contracts across all 22 counties and several years, registered
through the application layer (the same commands a registration point's requests run)."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from tcr_registry.adapters.persistence.models import api_keys, points
from tcr_registry.application import commands
from tcr_registry.application.actor import PointActor
from tcr_registry.domain.terms import Party, Terms
from tcr_shared.language.identifiers import credit_code_with_check_digit
from tcr_shared.language.policy_time import SHANGHAI, policy_year
from tcr_shared.language.regions import counties, prefecture_of
from tcr_shared.language.vocabulary import CATEGORIES
from tcr_shared.platform.auth import hash_key

log = logging.getLogger("tcr.registry.demo")
JURISDICTIONS = {
    "6400": "宁夏技术市场 Ningxia Technology Market",
    "6401": "银川市登记点 Yinchuan",
    "6402": "石嘴山市登记点 Shizuishan",
    "6403": "吴忠市登记点 Wuzhong",
    "6404": "固原市登记点 Guyuan",
    "6405": "中卫市登记点 Zhongwei",
}
DEMO_KEYS = {"analyst": "tcr_demo_analyst", "partner": "tcr_demo_partner"}
OUTSIDE = ["110108", "310115", "440305", "610113", "320102", "330106"]
_ORG = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def demo_point_key(jurisdiction: str) -> str:
    return f"tcr_demo_point_{jurisdiction}"


@dataclass
class DemoWorld:
    rng: random.Random
    enterprises: dict[str, list[Party]]
    institutions: list[Party]
    outsiders: list[Party]
    broker: Party

    def organisation(self, region: str) -> Party:
        return self.rng.choice(self.enterprises[region])


def _code(rng: random.Random, prefix: str, region: str) -> str:
    return credit_code_with_check_digit(prefix + region + "".join(rng.choice(_ORG) for _ in range(9)))


def build_world(seed: int = 2025) -> DemoWorld:
    rng = random.Random(seed)
    trades = ["新材料", "智能装备", "枸杞生物", "煤化工", "光伏能源", "葡萄酒", "数字信息", "节水农业", "冶金", "医药"]
    enterprises = {}
    for county in counties():
        enterprises[county.code] = [
            Party(
                name=f"宁夏{county.name_zh}{rng.choice(trades)}{kind}有限公司",
                kind="enterprise",
                credit_code=_code(rng, "91", county.code),
                region=county.code,
            )
            for kind in ("科技", "实业", "新能源")
        ]
    institutions = [
        Party(name="宁夏大学", kind="university", credit_code=_code(rng, "12", "640104"), region="640104"),
        Party(name="北方民族大学", kind="university", credit_code=_code(rng, "12", "640106"), region="640106"),
        Party(name="宁夏医科大学", kind="university", credit_code=_code(rng, "12", "640104"), region="640104"),
        Party(
            name="宁夏农林科学院", kind="research_institute", credit_code=_code(rng, "12", "640106"), region="640106"
        ),
        Party(
            name="宁夏煤炭科学研究所",
            kind="research_institute",
            credit_code=_code(rng, "12", "640202"),
            region="640202",
        ),
        Party(
            name="固原市农业科学研究所",
            kind="research_institute",
            credit_code=_code(rng, "12", "640402"),
            region="640402",
        ),
    ]
    outsiders = [
        Party(name=f"{name}技术有限公司", kind="enterprise", credit_code=_code(rng, "91", region), region=region)
        for name, region in zip(["北京中科", "上海张江", "深圳南山", "西安高新", "南京紫金", "杭州西湖"], OUTSIDE)
    ]
    outsiders.append(Party(name="Fraunhofer Technology Transfer GmbH", kind="foreign", country="DE"))
    broker = Party(
        name="宁夏技术市场服务中心", kind="public_institution", credit_code=_code(rng, "12", "640106"), region="640106"
    )
    return DemoWorld(rng, enterprises, institutions, outsiders, broker)


def _amount(rng: random.Random) -> Decimal:
    yuan = min(30_000_000, max(20_000, int(rng.lognormvariate(13.5, 1.1))))
    return Decimal(yuan).quantize(Decimal("1000")) + Decimal("0.00")


def _contract(world: DemoWorld, year: int, today: date) -> tuple[Terms, PointActor, date]:
    rng = world.rng
    county = rng.choice(counties()).code
    category = rng.choices(CATEGORIES, [30, 20, 20, 15, 15])[0]  # development .. service
    sub = {
        "development": ["commissioned", "cooperative"],
        "transfer": ["patent", "technical_secret", "other"],
        "licence": ["patent_exclusive", "patent_ordinary", "technical_secret"],
        "consulting": [None],
        "service": [None, "training", "brokerage"],
    }[category]
    roll = rng.random()
    if roll < 0.25:
        seller = rng.choice(world.institutions)
    elif roll < 0.35:
        seller = rng.choice(world.outsiders)
    else:
        seller = world.organisation(county)
    buyer_county = county if rng.random() < 0.3 else rng.choice(counties()).code
    buyer = world.organisation(buyer_county)
    while buyer == seller:
        buyer = world.organisation(rng.choice(counties()).code)
    intermediary = world.broker if rng.random() < 0.15 else None
    amount = _amount(rng)
    technology_amount = (amount * Decimal(rng.randint(60, 100)) / 100).quantize(Decimal("0.01"))
    last_day = min(date(year, 12, 20), today - timedelta(days=3))
    signed_on = date(year, 1, 5) + timedelta(days=rng.randint(0, max(0, (last_day - date(year, 1, 5)).days)))
    result_id = (
        f"ZL{year - rng.randint(1, 4)}1{rng.randint(1000000, 9999999)}.{rng.randint(0, 9)}"
        if category in ("transfer", "licence")
        else None
    )
    terms = Terms(
        title=f"{rng.choice(['一种', '基于', '面向'])}{rng.choice(['高效', '低碳', '智能', '精准'])}"
        f"{rng.choice(['灌溉', '提纯', '检测', '储能', '催化', '育种'])}技术{_label(category)}合同",
        category=category,
        subcategory=rng.choice(sub),
        signed_on=signed_on,
        amount=amount,
        technology_amount=technology_amount,
        consideration="equity" if rng.random() < 0.05 else "money",
        result_id=result_id,
        seller=seller,
        buyer=buyer,
        intermediary=intermediary,
    )
    anchor = seller if seller.region and seller.region.startswith("64") else buyer
    jurisdiction = prefecture_of(anchor.region)[:4]
    return terms, PointActor("", jurisdiction, "01"), signed_on


def _label(category: str) -> str:
    return {"development": "开发", "transfer": "转让", "licence": "许可", "consulting": "咨询", "service": "服务"}[
        category
    ]


async def _ensure_points_and_keys(service) -> dict[str, str]:
    point_ids: dict[str, str] = {}
    async with service.engine.begin() as conn:
        for jurisdiction, name in JURISDICTIONS.items():
            existing = await conn.scalar(
                select(points.c.id).where(points.c.jurisdiction == jurisdiction, points.c.number == "01")
            )
            if existing:
                point_ids[jurisdiction] = existing
                continue
            point_id = str(uuid.uuid4())
            await conn.execute(
                insert(points).values(id=point_id, number="01", name=name, jurisdiction=jurisdiction, created_by="demo")
            )
            await conn.execute(
                insert(api_keys).values(
                    id=str(uuid.uuid4()),
                    key_hash=hash_key(demo_point_key(jurisdiction)),
                    role="point",
                    point_id=point_id,
                    label=f"demo {name}",
                    created_by="demo",
                )
            )
            point_ids[jurisdiction] = point_id
        for role, secret in DEMO_KEYS.items():
            exists = await conn.scalar(select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(secret)))
            if not exists:
                await conn.execute(
                    insert(api_keys).values(
                        id=str(uuid.uuid4()),
                        key_hash=hash_key(secret),
                        role=role,
                        label=f"demo {role}",
                        created_by="demo",
                    )
                )
    return point_ids


async def load_demo(service, count: int | None = None, seed: int = 2025) -> int:
    """Load the demo set once; returns how many contracts it registered (0 when already there)."""
    point_ids = await _ensure_points_and_keys(service)
    if await service.event_log.head() > 0:
        return 0
    count = count or service.settings.demo_contracts
    world = build_world(seed)
    now = datetime.now(UTC)
    today = now.astimezone(SHANGHAI).date()
    years = list(range(today.year - 4, today.year + 1))
    plans = []
    for i in range(count):
        terms, actor, signed_on = _contract(world, years[i % len(years)], today)
        actor = PointActor(point_ids[actor.jurisdiction], actor.jurisdiction, actor.number)
        plans.append((uuid.uuid5(uuid.NAMESPACE_URL, f"tcr-demo:{seed}:{i}"), terms, actor, signed_on))
    lives = [_Life(*plan, fate=world.rng.random()) for plan in plans]
    for life in lives:
        life.plan_certification(world.rng, now)
    for chunk_start in range(0, len(lives), 50):
        chunk = lives[chunk_start : chunk_start + 50]
        await asyncio.gather(*(life.submit_and_decide(service, now) for life in chunk))
        log.info("demo contracts registered", extra={"service": "registry", "status": chunk_start + len(chunk)})
    # Each registration book numbers in order of certification (a back-dated certification behind a number is
    # refused): certify book by book in time order, the books side by side.
    books: dict[tuple[str, int], list[_Life]] = {}
    for life in sorted((lf for lf in lives if lf.certified_at), key=lambda lf: lf.certified_at):
        books.setdefault((life.actor.point_id, policy_year(life.certified_at)), []).append(life)
    await asyncio.gather(*(_certify_in_order(service, book, now) for book in books.values()))
    return count


async def _certify_in_order(service, book: list[_Life], now: datetime) -> None:
    for life in book:
        await life.certify_and_after(service, now)


@dataclass
class _Life:
    """One demo contract's fate, decided up front from the seeded generator (so the set is the same each time)."""

    contract_id: uuid.UUID
    terms: Terms
    actor: PointActor
    signed_on: date
    fate: float
    certified_at: datetime | None = None
    review: str | None = None

    def plan_certification(self, rng: random.Random, now: datetime) -> None:
        if self.fate < 0.09 or (self.fate < 0.14 and self.signed_on > now.date() - timedelta(days=60)):
            return  # rejected, withdrawn, or still waiting for certification
        self.certified_at = min(
            datetime.combine(self.signed_on + timedelta(days=rng.randint(2, 20)), time(10, 0), SHANGHAI),
            now - timedelta(hours=1),
        )
        if self.terms.needs_expert_review:
            self.review = f"ZJPS-{self.certified_at.year}-{rng.randint(100, 999)}"

    async def submit_and_decide(self, service, now: datetime) -> None:
        submitted_at = datetime.combine(self.signed_on + timedelta(days=1), time(9, 30), SHANGHAI)
        await service.writer.execute(commands.submit(self.contract_id, self.actor, self.terms, min(submitted_at, now)))
        if self.fate < 0.06:
            reason = "合同标的不属于技术合同范围 (the subject is not a technology contract)"
            await service.writer.execute(commands.reject(self.contract_id, self.actor, "R03", reason, now, None))
        elif self.fate < 0.09:
            reason = "当事人撤回 (withdrawn by the parties)"
            await service.writer.execute(commands.withdraw(self.contract_id, self.actor, reason, now, None))

    async def certify_and_after(self, service, now: datetime) -> None:
        contract_id, actor = self.contract_id, self.actor
        await service.writer.execute(
            commands.certify(contract_id, actor, self.certified_at, now, None, self.review, None)
        )
        if self.fate > 0.95:
            await service.writer.execute(
                commands.revoke(contract_id, actor, "合同存在虚假内容 (false statements found)", now, None)
            )
        elif self.fate > 0.90:
            new_amount = (self.terms.amount * Decimal("1.2")).quantize(Decimal("0.01"))
            needs_review = self.terms.technology_amount >= Decimal("5000000.00")
            await service.writer.execute(
                commands.amend(
                    contract_id,
                    actor,
                    {"amount": str(new_amount)},
                    "补充协议增加合同金额 (a supplementary agreement raised the price)",
                    now,
                    "ZJPS-AMEND-1" if needs_review else None,
                    None,
                )
            )
