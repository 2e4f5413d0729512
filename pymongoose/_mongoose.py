"""The public API under the name of the Cython binding's compiled module.

Programs written for the Cython binding import from ``pymongoose._mongoose``
(``from pymongoose._mongoose import MG_EV_HTTP_MSG``); this alias keeps them working.
New code should import from ``pymongoose``.
"""

from . import *  # noqa: F403 (every public name, as the Cython module had them)
from . import __all__ as __all__
