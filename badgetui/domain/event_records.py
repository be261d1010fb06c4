"""The payload records of every openedx-events signal that carries user data (openedx-events.md §2).

Each class mirrors an attrs class of `openedx_events.learning.data` field for field, in wire
order: the Avro schemas of the event bus are built from these classes (`domain.avro`) and must
equal upstream's `.avsc` files, and the rule editor's key paths come from them too. Keys, UUIDs
and datetimes travel as strings (§6.1), so they are `str` here. `extra="ignore"` is what lets a
newer minor version that appends optional fields through: the known fields are read, the rest
dropped, as upstream's consumer does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

COURSE_PASSING: Final = "org.openedx.learning.course.passing.status.updated.v1"
CCX_COURSE_PASSING: Final = "org.openedx.learning.ccx.course.passing.status.updated.v1"
BADGE_AWARDED: Final = "org.openedx.learning.badge.awarded.v1"
BADGE_REVOKED: Final = "org.openedx.learning.badge.revoked.v1"

DEFAULT_EVENTS: Final = (COURSE_PASSING, CCX_COURSE_PASSING)



class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserPersonalData(_Record):
    username: StrictStr
    email: StrictStr
    name: StrictStr = ""


class UserData(_Record):
    id: StrictInt
    is_active: StrictBool
    pii: UserPersonalData


class CourseData(_Record):
    course_key: StrictStr
    display_name: StrictStr = ""
    start: StrictStr | None = None
    end: StrictStr | None = None


class CcxCourseData(_Record):
    ccx_course_key: StrictStr
    master_course_key: StrictStr
    display_name: StrictStr = ""
    coach_email: StrictStr = ""
    start: StrictStr | None = None
    end: StrictStr | None = None
    max_students_allowed: StrictInt | None = None


class CoursePassingStatusData(_Record):
    is_passing: StrictBool
    course: CourseData
    user: UserData


class CcxCoursePassingStatusData(_Record):
    # Wire order: attrs moves the redefined `course` after `user` (openedx-events.md §2).
    is_passing: StrictBool
    user: UserData
    course: CcxCourseData


class BadgeTemplateData(_Record):
    uuid: StrictStr
    origin: StrictStr
    name: StrictStr | None = None
    description: StrictStr | None = None
    image_url: StrictStr | None = None


class BadgeData(_Record):
    uuid: StrictStr
    user: UserData
    template: BadgeTemplateData


class CourseEnrollmentData(_Record):
    user: UserData
    course: CourseData
    mode: StrictStr
    is_active: StrictBool
    creation_date: StrictStr
    #: Who enrolled the learner (staff, an API client): never the learner credited.
    created_by: UserData | None = None


class CertificateData(_Record):
    user: UserData
    course: CourseData
    mode: StrictStr
    grade: StrictStr
    download_url: StrictStr
    name: StrictStr
    current_status: StrictStr
    previous_status: StrictStr = ""


class ProgramData(_Record):
    uuid: StrictStr
    title: StrictStr
    program_type: StrictStr


class ProgramCertificateData(_Record):
    user: UserData
    program: ProgramData
    uuid: StrictStr
    status: StrictStr
    url: StrictStr
    certificate_available_date: StrictStr | None = None


class CohortData(_Record):
    user: UserData
    course: CourseData
    name: StrictStr


class ExamAttemptData(_Record):
    student_user: UserData
    course_key: StrictStr
    usage_key: StrictStr
    exam_type: StrictStr
    #: Who triggered the event (an instructor resetting an attempt): never the learner credited.
    requesting_user: UserData | None = None


class CourseAccessRoleData(_Record):
    user: UserData
    org_key: StrictStr
    course_key: StrictStr
    role: StrictStr


class DiscussionThreadData(_Record):
    body: StrictStr
    commentable_id: StrictStr
    id: StrictStr
    truncated: StrictBool
    url: StrictStr
    user: UserData
    course_id: StrictStr
    thread_type: StrictStr | None = None
    anonymous: StrictBool | None = None
    anonymous_to_peers: StrictBool | None = None
    title: StrictStr | None = None
    title_truncated: StrictBool | None = None
    group_id: StrictInt | None = None
    team_id: StrictInt | None = None
    category_id: StrictInt | None = None
    category_name: StrictStr | None = None
    discussion: dict[StrictStr, StrictStr] | None = None
    user_course_roles: list[StrictStr] = Field(default_factory=list)
    user_forums_roles: list[StrictStr] = Field(default_factory=list)
    options: dict[StrictStr, StrictBool] = Field(default_factory=dict)


class VerificationAttemptData(_Record):
    attempt_id: StrictInt
    user: UserData
    status: StrictStr
    name: StrictStr | None = None
    expiration_date: StrictStr | None = None


class LtiProviderLaunchParamsData(_Record):
    roles: StrictStr
    context_id: StrictStr
    user_id: StrictStr
    extra_params: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class LtiProviderLaunchData(_Record):
    user: UserData
    course_key: StrictStr
    usage_key: StrictStr
    launch_params: LtiProviderLaunchParamsData


#: Where the learner is in a payload: the `user` field, another field, or (for the account
#: events, whose record *is* the user) the record itself.
SELF: Final = ""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """How one known event type is carried: its data key, payload record and learner field.

    Open edX Credentials takes the first `UserData` of the payload in *alphabetical* order of
    field names (`inspect.getmembers`), which for an enrollment is `created_by` and for an exam
    attempt `requesting_user` when set: staff would be credited. badgetui names the learner's
    field per type instead."""

    event_type: str
    data_key: str
    record: type[_Record]
    user_key: str = "user"


def _specs(prefix: str, data_key: str, record: type[_Record], *names: str,
           user_key: str = "user") -> list[EventSpec]:
    return [EventSpec(f"org.openedx.learning.{prefix}.{name}.v1", data_key, record, user_key)
            for name in names]


EVENT_SPECS: Final[dict[str, EventSpec]] = {
    spec.event_type: spec
    for spec in (
        EventSpec(COURSE_PASSING, "course_passing_status", CoursePassingStatusData),
        EventSpec(CCX_COURSE_PASSING, "course_passing_status", CcxCoursePassingStatusData),
        EventSpec(BADGE_AWARDED, "badge", BadgeData),
        EventSpec(BADGE_REVOKED, "badge", BadgeData),
        *_specs("student.registration", "user", UserData, "completed", user_key=SELF),
        *_specs("auth.session.login", "user", UserData, "completed", user_key=SELF),
        *_specs("course.enrollment", "enrollment", CourseEnrollmentData, "created", "changed"),
        *_specs("course.unenrollment", "enrollment", CourseEnrollmentData, "completed"),
        *_specs("certificate", "certificate", CertificateData, "created", "changed", "revoked"),
        *_specs("program.certificate", "program_certificate", ProgramCertificateData,
                "awarded", "revoked"),
        *_specs("cohort_membership", "cohort", CohortData, "changed"),
        *_specs("exam.attempt", "exam_attempt", ExamAttemptData, "submitted", "rejected",
                "verified", "errored", "reset", user_key="student_user"),
        *_specs("user.course_access_role", "course_access_role_data", CourseAccessRoleData,
                "added", "removed"),
        *_specs("forum.thread", "thread", DiscussionThreadData, "created"),
        *_specs("forum.thread.response", "thread", DiscussionThreadData, "created"),
        *_specs("forum.thread.response.comment", "thread", DiscussionThreadData, "created"),
        *_specs("idv_attempt", "idv_attempt", VerificationAttemptData, "created", "pending",
                "approved", "denied"),
        *_specs("lti_provider.launch", "launch_data", LtiProviderLaunchData, "success"),
    )
}
