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

"""The command outputs README.rst shows, for the tests that compare them."""

import os
import re

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(TOP, 'README.rst')

_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}')
_SECONDS = re.compile(r'\b\d+\.\d s\b')
_NOVA = re.compile(r'\bnova \d+\.\d+\.\d+ \(\d{4}\.\d\)')
_TIME = re.compile(r'\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ')


def literal_blocks(path=README):
    """Every indented literal block of ``path``, as lists of lines."""
    with open(path, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if not lines[index].endswith('::'):
            index += 1
            continue
        index += 1
        block = []
        while index < len(lines) and (not lines[index].strip() or
                                      lines[index].startswith('    ')):
            block.append(lines[index][4:])
            index += 1
        while block and not block[-1].strip():
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        blocks.append(block)
    return blocks


def output_of(command, path=README):
    """The lines README shows after ``$ command``."""
    for block in literal_blocks(path):
        if block and block[0] == '$ ' + command:
            return block[1:]
    raise AssertionError('README.rst shows no output of %r' % command)


def block_from(prefix, path=README):
    """The literal block with a line starting with ``prefix``, from there."""
    for block in literal_blocks(path):
        for index, line in enumerate(block):
            if line.startswith(prefix):
                return block[index:]
    raise AssertionError('README.rst shows no block with %r' % prefix)


def normalised(lines):
    """Lines with what differs by run or release replaced.

    Uuids, timings, times of day and "nova VERSION (RELEASE)".
    """
    return [_TIME.sub('TIME', _NOVA.sub('nova VERSION (RELEASE)', _SECONDS.sub(
        'N.N s', _UUID.sub('UUID', line)))).rstrip() for line in lines]
