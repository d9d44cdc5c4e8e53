"""What callscope keeps: the call log, media streams, recordings, the organisation and its
number directory, legal holds, capture health samples and the audit trail.

Times are aware UTC datetimes here (the pipeline's int nanoseconds are converted at this
edge). A call row mirrors the call-record contract (`contracts/call-record.schema.json`);
the full record as printed by `callscope import --json` is kept in `Call.record`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Result(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    BUSY = "busy", _("Busy")
    NO_ANSWER = "no_answer", _("No answer")
    CANCELLED = "cancelled", _("Cancelled")
    DECLINED = "declined", _("Declined")
    FAILED = "failed", _("Failed")
    IN_PROGRESS = "in_progress", _("In progress")


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound")
    OUTBOUND = "outbound", _("Outbound")
    INTERNAL = "internal", _("Internal")
    UNKNOWN = "unknown", _("Unknown")


class EndedBy(models.TextChoices):
    CALLER = "caller", _("Caller")
    CALLEE = "callee", _("Callee")
    TIMEOUT = "timeout", _("Timeout")
    UNKNOWN = "unknown", _("Unknown")


class Source(models.TextChoices):
    PCAP = "pcap", _("Capture file")
    LIVE = "live", _("Mirror port")
    HEP = "hep", _("HEP")
    SIPREC = "siprec", _("SIPREC")


class OrgUnit(models.Model):
    """A bureau (局), ward office (区役所), department (部) or section (課/係).

    The organisation changes every April: a unit has validity dates, and a call is counted
    under the unit in force on its date. `top` (the bureau or ward) and `department` are
    denormalised from the parent chain so that analytics can group without recursion.
    """

    class Level(models.TextChoices):
        BUREAU = "bureau", _("Bureau")
        WARD = "ward", _("Ward office")
        DEPARTMENT = "department", _("Department")
        SECTION = "section", _("Section")

    code = models.CharField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=200)
    level = models.CharField(_("level"), max_length=16, choices=Level.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    top = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    department = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_ward = models.BooleanField(_("ward office"), default=False)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    class Meta:
        verbose_name = _("organisation unit")
        constraints = [
            models.UniqueConstraint(fields=["code", "valid_from"], name="orgunit_code_from")
        ]
        indexes = [models.Index(fields=["level", "valid_from"])]

    def __str__(self) -> str:
        return self.name


class DirectoryEntry(models.Model):
    """A number or extension and the section it belongs to over a period."""

    class Kind(models.TextChoices):
        STAFF = "staff", _("Staff phone")
        GROUP = "group", _("Ringing group")
        IVR = "ivr", _("Voice response (IVR)")
        FAX = "fax", _("Fax")

    number = models.CharField(_("number"), max_length=32, db_index=True)
    unit = models.ForeignKey(OrgUnit, on_delete=models.PROTECT, related_name="numbers")
    label = models.CharField(_("label"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.STAFF)
    valid_from = models.DateField(_("valid from"))
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    class Meta:
        verbose_name = _("directory entry")
        verbose_name_plural = _("directory entries")
        constraints = [
            models.UniqueConstraint(fields=["number", "valid_from"], name="directory_number_from")
        ]


class Call(models.Model):
    """One SIP call leg, as in the call-record contract."""

    call_id = models.CharField(_("Call-ID"), max_length=255)
    conversation_id = models.CharField(_("conversation"), max_length=255, db_index=True)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    transport = models.CharField(_("transport"), max_length=8, default="udp")
    probe = models.CharField(_("capture probe"), max_length=64, blank=True)

    caller_number = models.CharField(_("caller number"), max_length=64, blank=True)
    caller_uri = models.CharField(_("caller URI"), max_length=255, blank=True)
    caller_display = models.CharField(_("caller name"), max_length=128, blank=True)
    caller_pseudonym = models.CharField(max_length=24, blank=True, db_index=True)
    caller_class = models.CharField(_("caller number class"), max_length=16, blank=True)
    caller_unit = models.ForeignKey(
        OrgUnit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    callee_number = models.CharField(_("callee number"), max_length=64, blank=True)
    callee_uri = models.CharField(_("callee URI"), max_length=255, blank=True)
    callee_display = models.CharField(_("callee name"), max_length=128, blank=True)
    callee_pseudonym = models.CharField(max_length=24, blank=True, db_index=True)
    callee_class = models.CharField(_("callee number class"), max_length=16, blank=True)
    callee_unit = models.ForeignKey(
        OrgUnit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    direction = models.CharField(
        _("direction"), max_length=10, choices=Direction.choices, default=Direction.UNKNOWN
    )

    started_at = models.DateTimeField(_("started at"))
    ringing_at = models.DateTimeField(_("ringing at"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=12, choices=Result.choices)
    final_code = models.PositiveSmallIntegerField(_("final response"), null=True, blank=True)
    ended_by = models.CharField(
        _("ended by"), max_length=8, choices=EndedBy.choices, null=True, blank=True
    )
    setup_seconds = models.FloatField(_("waiting time"), null=True, blank=True)
    ring_seconds = models.FloatField(_("ring time"), null=True, blank=True)
    talk_seconds = models.FloatField(_("talk time"), null=True, blank=True)
    hold_seconds = models.FloatField(_("hold time"), null=True, blank=True)
    early_media = models.BooleanField(_("early media"), default=False)
    has_dtmf = models.BooleanField(_("DTMF"), default=False)
    transferred = models.BooleanField(_("transferred"), default=False)
    encrypted_media = models.BooleanField(_("encrypted media"), default=False)
    anomaly_count = models.PositiveIntegerField(default=0)

    record = models.JSONField(_("call record"), default=dict)
    ladder = models.JSONField(_("SIP events"), default=list)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("call")
        constraints = [
            models.UniqueConstraint(fields=["call_id", "started_at"], name="call_leg_unique")
        ]
        indexes = [
            # keyset pagination of the search (newest first) and date-range filters
            models.Index(fields=["-started_at", "-id"], name="call_started_desc"),
            models.Index(fields=["caller_unit", "started_at"], name="call_caller_unit"),
            models.Index(fields=["callee_unit", "started_at"], name="call_callee_unit"),
            models.Index(fields=["result", "started_at"], name="call_result"),
            # repeat callers at call end (analytics.rollups) and number searches by period
            models.Index(fields=["caller_pseudonym", "started_at"], name="call_caller_time"),
        ]

    def __str__(self) -> str:
        return self.call_id


class Stream(models.Model):
    """One direction of media of a call (SSRC changes continue the same stream)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="streams")
    direction = models.CharField(max_length=20)
    media = models.CharField(max_length=8, default="audio")
    codec = models.CharField(max_length=32, blank=True)
    payload_types = models.JSONField(default=list)
    src = models.CharField(max_length=64)
    dst = models.CharField(max_length=64)
    ssrcs = models.JSONField(default=list)
    packets = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    jitter_ms = models.FloatField(null=True, blank=True)
    first_at = models.DateTimeField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)


class Recording(models.Model):
    """The stereo Opus recording of a call, encrypted with its own wrapped data key.

    `state` is the encoder work queue: workers claim `pending` rows with
    ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL) or a guarded update (SQLite).
    Retention deletes the object and destroys `wrapped_key`; the row stays as the trace.
    """

    class Status(models.TextChoices):
        RECORDED = "recorded", _("Recorded")
        PARTIAL = "partial", _("Partly recorded")
        NO_MEDIA = "no_media", _("No media")
        ENCRYPTED = "encrypted", _("Encrypted media")
        UNSUPPORTED_CODEC = "unsupported_codec", _("Unsupported codec")
        VIDEO_ONLY = "video_only", _("Video only")
        DELETED = "deleted", _("Deleted")

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for encoding")
        ENCODING = "encoding", _("Encoding")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="recording")
    status = models.CharField(max_length=20, choices=Status.choices, null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    spool_path = models.CharField(max_length=500, blank=True)
    #: per direction ("caller_to_callee" / "callee_to_caller"): {pt: [encoding, clock, channels]}
    payload_types = models.JSONField(default=dict)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    storage_key = models.CharField(max_length=300, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    pcm_sha256 = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=32, blank=True)
    wrapped_key = models.BinaryField(null=True, blank=True)
    peaks = models.BinaryField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    encoded_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "id"], name="recording_state")]


class LegalHold(models.Model):
    """Keeps a recording past retention while a case about an abusive caller is open."""

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="holds")
    reason = models.TextField(_("reason"))
    case_reference = models.CharField(_("case reference"), max_length=100)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    placed_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["recording", "released_at"], name="hold_active")]


class CaptureSample(models.Model):
    """Counters of one capture source over one interval, for the capture health page."""

    source = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Source.choices)
    at = models.DateTimeField()
    seconds = models.PositiveIntegerField(default=60)
    packets = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    kernel_drops = models.PositiveBigIntegerField(default=0)
    app_drops = models.PositiveBigIntegerField(default=0)
    calls_in_progress = models.PositiveIntegerField(default=0)
    calls_ended = models.PositiveIntegerField(default=0)
    spool_backlog = models.PositiveIntegerField(default=0)
    anomalies = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["source", "-at"], name="capture_sample_recent")]


class AuditEntry(models.Model):
    """One line of the append-only audit trail.

    Each entry carries the SHA-256 of its canonical content chained to the previous entry's
    hash, so that a changed, removed or reordered entry breaks the chain
    (`callscope audit verify`). Entries are written only through `store.audit.record`.
    """

    sequence = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=48, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["-at"], name="audit_recent")]
