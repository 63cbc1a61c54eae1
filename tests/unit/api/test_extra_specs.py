# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

import ddt
from nova.api.validation.extra_specs import validators
from nova import exception
from nova import test

from nova_xloud.api.validation import extra_specs


@ddt.ddt
class ExtraSpecValidatorsTestCase(test.NoDBTestCase):

    def test_register(self):
        self.assertEqual(['minimum_cpu', 'minimum_memory'],
                         [v.name for v in extra_specs.register()])

    def test_loaded_by_nova(self):
        # Nova loads the entry point of the installed package itself.
        for name in ('minimum_cpu', 'minimum_memory'):
            self.assertIsInstance(validators.VALIDATORS[name],
                                  extra_specs.WholeNumberValidator)

    @ddt.data('1', '2', '64', '2147483647')
    def test_valid(self, value):
        for name in ('minimum_cpu', 'minimum_memory'):
            validators.validate(name, value)

    @ddt.data('abc', '0', '-1', '1.5', '', ' ', '1e3', '+1', '1_0',
              '2147483648', '9' * 255)
    def test_invalid(self, value):
        for name, allowed in (('minimum_cpu', "the flavor's vcpus"),
                              ('minimum_memory', "the flavor's ram")):
            e = self.assertRaises(exception.ValidationError,
                                  validators.validate, name, value)
            self.assertIn(f"extra spec '{name}'", str(e))
            self.assertIn(f'whole number from 1 to {allowed}', str(e))
            self.assertIn(f"got '{value}'", str(e))

    def test_other_specs_unaffected(self):
        validators.validate('minimum_cpux', 'abc')
        self.assertRaises(exception.ValidationError,
                          validators.validate, 'hw:cpu_policy', 'abc')
