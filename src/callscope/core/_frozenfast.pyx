# cython: language_level=3
"""Compiled twin of the slot setting in `callscope.core.frozen.quick_init`.

The ``__init__`` that `quick_init` generates sets each field through its slot descriptor's
``__set__``: one Python call per field. `SlotSetter.fill` sets all of a new instance's
fields in one call, as the descriptors would (the value stored in the instance's slot, a
reference taken, the value it replaces released): the slots' places are read from their
member descriptors once per class, and only plain object slots of the class (or of a base
it inherits them from) are accepted.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.mem cimport PyMem_Free, PyMem_Malloc
import inspect
import types


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef extern from "structmember.h":
    int T_OBJECT_EX
    int READONLY


cdef class SlotSetter:
    """Sets the slots ``names`` of instances of ``cls`` (see the module docs)."""

    cdef Py_ssize_t* offsets
    cdef Py_ssize_t count
    cdef type cls

    def __cinit__(self, type cls, names):
        cdef PyMemberDef* member
        names = list(names)
        self.cls = cls
        self.count = len(names)
        self.offsets = <Py_ssize_t*>PyMem_Malloc(max(1, self.count) * sizeof(Py_ssize_t))
        if self.offsets == NULL:
            raise MemoryError()
        for index, name in enumerate(names):
            descriptor = inspect.getattr_static(cls, name, None)
            if type(descriptor) is not types.MemberDescriptorType:
                raise TypeError(f"{cls.__name__}.{name} is not a slot")
            member = (<PyMemberDescrObject*>descriptor).d_member
            if member.type != T_OBJECT_EX or member.flags & READONLY:
                raise TypeError(f"{cls.__name__}.{name} is not a plain object slot")
            self.offsets[index] = member.offset

    def __dealloc__(self):
        PyMem_Free(self.offsets)

    def fill(self, obj, tuple values):
        """Set the slots of ``obj`` (an instance of the class) to ``values``, in order."""
        cdef PyObject** slot
        cdef PyObject* old
        cdef Py_ssize_t i
        if not isinstance(obj, self.cls):
            raise TypeError(f"not a {self.cls.__name__}")
        if len(values) != self.count:
            raise TypeError(f"{self.cls.__name__} takes {self.count} values")
        for i in range(self.count):
            value = values[i]
            slot = <PyObject**>((<char*><PyObject*>obj) + self.offsets[i])
            Py_INCREF(value)
            old = slot[0]
            slot[0] = <PyObject*>value
            Py_XDECREF(old)
