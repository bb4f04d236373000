"""Templating for playbooks: the templar of :mod:`hlplay.templating.templar`.

The templar lives below the playbook so that modules can template without
importing the loader; the names stay importable from here.
"""

from __future__ import annotations

from hlplay.templating.templar import NO_TEMPLATES as NO_TEMPLATES
from hlplay.templating.templar import HlUndefined as HlUndefined
from hlplay.templating.templar import Layer as Layer
from hlplay.templating.templar import Templar as Templar
from hlplay.templating.templar import TemplateFailure as TemplateFailure
from hlplay.templating.templar import Vars as Vars
from hlplay.templating.templar import default_templar as default_templar
from hlplay.templating.templar import has_template as has_template
from hlplay.templating.templar import template_keys as template_keys
from hlplay.templating.templar import truthy as truthy
