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

"""nova_xloud.store on in-memory instances, for tests without a database."""

import fixtures

from nova_xloud import records


class FakeStore(fixtures.Fixture):
    """store.update applies the change to instance.system_metadata.

    ``writes`` lists (instance uuid, {key: new value or None}) per write
    that changed something, as the real store would write them.
    """

    def _setUp(self):
        self.writes = []
        self.useFixture(fixtures.MonkeyPatch('nova_xloud.store.update',
                                             self.update))

    def update(self, context, instance, change, *args, **kwargs):
        if not instance.obj_attr_is_set('system_metadata'):
            instance.system_metadata = {}
        sysmeta = instance.system_metadata
        old = {k: v for k, v in sysmeta.items()
               if k.startswith(records.PREFIX)}
        view = records.View(
            dict(old), flavor=instance.flavor,
            old_flavor=instance.old_flavor
            if instance.obj_attr_is_set('old_flavor') else None)
        result = change(view, *args, **kwargs)
        changes = {k: view.system_metadata.get(k)
                   for k in set(old) | set(view.system_metadata)
                   if old.get(k) != view.system_metadata.get(k)}
        for key, value in changes.items():
            if value is None:
                sysmeta.pop(key, None)
            else:
                sysmeta[key] = value
        if changes:
            self.writes.append((instance.uuid, changes))
        return result
