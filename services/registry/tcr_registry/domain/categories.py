"""The national classification of technology contracts (技术合同分类)."""

from __future__ import annotations

SUBCATEGORIES: dict[str, frozenset[str | None]] = {
    "development": frozenset({"commissioned", "cooperative"}),  # 技术开发: 委托 / 合作
    "transfer": frozenset({"patent", "patent_application", "technical_secret", "other"}),  # 技术转让
    "licence": frozenset({"patent_exclusive", "patent_sole", "patent_ordinary", "technical_secret", "other"}),
    "consulting": frozenset({None, "general"}),  # 技术咨询
    "service": frozenset({None, "general", "brokerage", "training"}),  # 技术服务, 技术中介, 技术培训
}

CATEGORY_LABELS = {
    "development": {"zh": "技术开发", "en": "Development"},
    "transfer": {"zh": "技术转让", "en": "Transfer"},
    "licence": {"zh": "技术许可", "en": "Licence"},
    "consulting": {"zh": "技术咨询", "en": "Consulting"},
    "service": {"zh": "技术服务", "en": "Service"},
}
