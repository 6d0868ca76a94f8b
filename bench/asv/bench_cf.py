"""asv: user-item matrix build, the course's CF predictions and fixed-CF recommendations."""

from .common import _ExamplesMixin, _FlopsMixin, _KernelBenchmark, params_for


class CsrBuild(_ExamplesMixin, _KernelBenchmark):
    kernel = "csr_build"
    params = params_for(kernel)


class CfCourseUser(_FlopsMixin, _KernelBenchmark):
    kernel = "cf_course_user"
    params = params_for(kernel)


class CfCourseItem(_FlopsMixin, _KernelBenchmark):
    kernel = "cf_course_item"
    params = params_for(kernel)


class CfFixedRecommend(_ExamplesMixin, _KernelBenchmark):
    kernel = "cf_fixed_recommend"
    params = params_for(kernel)
