"""The ctypes mirrors of strata/_lib.py against engine/strata.h itself.

tools/python/abi_layout.c is compiled from the header by meson and prints the
size and field offsets of the public structs and every public constant
(STRATA_ABI_LAYOUT names it); a field added, moved or retyped on either side
fails here. The header is also scanned for STRATA_API functions so that a new
public function cannot go unbound by accident.
"""
import ctypes
import json
import os
import re
import subprocess
import unittest

from strata import _lib, errors

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "engine", "strata.h")


def layout():
    exe = os.environ.get("STRATA_ABI_LAYOUT")
    if not exe:
        raise unittest.SkipTest("STRATA_ABI_LAYOUT (the strata-abi-layout program) is not set")
    return json.loads(subprocess.run([exe], check=True, capture_output=True, text=True).stdout)


class StructLayoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = layout()

    def check_struct(self, key, struct):
        c = self.c[key]
        names = [f[0] for f in struct._fields_]
        self.assertEqual(names, list(c["fields"]), "%s: fields or their order differ" % key)
        for name in names:
            self.assertEqual([getattr(struct, name).offset, getattr(struct, name).size],
                             c["fields"][name], "%s.%s: [offset, size]" % (key, name))
        self.assertEqual(ctypes.sizeof(struct), c["size"], "%s: size" % key)

    def test_options(self):
        self.check_struct("options", _lib.Options)

    def test_search_options(self):
        self.check_struct("search_options", _lib.SearchOptions)

    def test_stats(self):
        self.check_struct("stats", _lib.Stats)

    def test_enum_and_bool_sizes(self):
        self.assertEqual(self.c["sizes"]["strata_metric"], ctypes.sizeof(ctypes.c_int))
        self.assertEqual(self.c["sizes"]["strata_sync_mode"], ctypes.sizeof(ctypes.c_int))
        self.assertEqual(self.c["sizes"]["bool"], ctypes.sizeof(ctypes.c_bool))

    def test_constants(self):
        k = self.c["constants"]
        codes = {n: v for n, v in k.items() if re.fullmatch(r"STRATA_(OK|E[A-Z]+)", n)}
        self.assertEqual(codes, _lib.CODES, "error codes")
        self.assertEqual(k["STRATA_NO_ID"], _lib.NO_ID)
        for name in ("DIM_MAX", "M_MIN", "M_MAX", "K_MAX", "EF_MAX", "CREATE", "READONLY",
                     "VERIFY"):
            self.assertEqual(k["STRATA_" + name], getattr(_lib, name), name)
        self.assertEqual({m: k["STRATA_METRIC_" + m.upper()] for m in _lib.METRICS}, _lib.METRICS)
        self.assertEqual({m: k["STRATA_SYNC_" + m.upper()] for m in _lib.SYNC_MODES},
                         _lib.SYNC_MODES)

    def test_every_error_code_has_its_own_class(self):
        for code, name in _lib.CODE_NAMES.items():
            if code == 0:
                continue
            e = errors.error_for(code, "detail")
            self.assertEqual(e.code, code)
            self.assertEqual(e.name, name)
            self.assertIsNot(type(e), errors.Error, "%s has no class of its own" % name)
            self.assertEqual(e.message, _lib.strerror(code))


class HeaderFunctionsTest(unittest.TestCase):
    def test_every_public_function_is_declared_in_the_binding(self):
        with open(HEADER) as f:
            text = f.read()
        public = set(re.findall(r"STRATA_API[^;(]*?\b(strata_\w+)\s*\(", text))
        self.assertGreater(len(public), 15)
        bound = set(_lib._REQUIRED) | set(_lib._OPTIONAL)
        self.assertEqual(public - bound, set(), "public functions the binding does not declare")
        # Optional ones exist for functions that may be missing from an older library only.
        self.assertEqual(set(_lib._REQUIRED) - public, set(), "required but not in strata.h")


if __name__ == "__main__":
    unittest.main()
