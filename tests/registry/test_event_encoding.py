"""The registry's transcoder (OneEncoderTranscoder) writes exactly the bytes of the eventsourcing library's
JSONTranscoder, for the registry's own events and for every type the library transcodes, and reads them back
equal: the event store's contents do not depend on which of the two wrote them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

from tcr_registry.adapters.persistence.event_store import OneEncoderTranscoder, Registry
from tcr_registry.domain.contract import Contract
from tcr_registry.domain.registration_book import RegistrationBook
from tests.registry.memory import NOW, terms


def transcoders() -> tuple[JSONTranscoder, JSONTranscoder]:
    registry = Registry({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    library = JSONTranscoder()
    registry.register_transcodings(library)
    return registry.mapper.transcoder, library


def test_the_registrys_events_encode_to_the_librarys_bytes():
    ours, library = transcoders()
    assert type(ours) is OneEncoderTranscoder
    contract = Contract.submit(uuid.uuid4(), "point-1", terms(title='技术合同 "引号" \\ 换行\n'), NOW)
    book = RegistrationBook.open("point-1", "640101", 2025)
    number = book.issue(str(contract.id), NOW)
    contract.certify(number, NOW, contract.terms, None)
    events = [*contract.collect_events(), *book.collect_events()]
    assert len(events) == 4
    for event in events:
        state = dict(vars(event))
        assert ours.encode(state) == library.encode(state)
        assert ours.decode(ours.encode(state)) == library.decode(library.encode(state))


def test_every_transcoded_type_encodes_as_the_library_does():
    ours, library = transcoders()
    value = {
        "uuid": uuid.uuid4(),
        "moment": datetime(2025, 12, 31, 10, 0, tzinfo=timezone(timedelta(hours=8))),
        "utc": datetime.now(UTC),
        "money": Decimal("900000.50"),
        "nested": [{"a": None, "b": True, "c": 1.5, "d": [1, "二", {"e": uuid.uuid4()}]}],
        "text": "宁夏 \u2028 \x00 \ud7ff",
        "empty": {},
    }
    assert ours.encode(value) == library.encode(value)
    assert ours.decode(ours.encode(value)) == value
    unknown = {"day": date(2025, 3, 1)}  # no transcoding registered: both refuse it alike
    refusals = []
    for transcoder in (ours, library):
        try:
            transcoder.encode(unknown)
        except TranscodingNotRegisteredError as refused:
            refusals.append(str(refused))
    assert len(refusals) == 2 and refusals[0] == refusals[1]
