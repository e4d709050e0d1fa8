// ApiCheck fails the build when the SDK uses a type outside .NET Standard 2.0
// or references an assembly outside the base class library. Usage:
//
//   mono ApiCheck.exe Fastway.dll netstandard.dll
//
// netstandard.dll is Mono's .NET Standard 2.0 facade: the types it forwards
// are exactly the standard's. Every type the SDK references (directly, as a
// generic argument, or in a member's signature) must be one of them. Member
// overloads are not checked: a method Mono added to a standard type would
// pass (none of the SDK's calls is one; the .csproj build for netstandard2.0
// checks that fully).
using System;
using System.Collections.Generic;
using System.Linq;
using Mono.Cecil;

static class ApiCheck
{
    static int Main(string[] args)
    {
        var sdk = ModuleDefinition.ReadModule(args[0]);
        var std = ModuleDefinition.ReadModule(args[1]);
        var allowed = new HashSet<string>(std.ExportedTypes.Select(t => t.FullName));
        allowed.UnionWith(std.Types.Select(t => t.FullName));
        if (std.Assembly.Name.Version != new Version(2, 0, 0, 0))
        {
            Console.Error.WriteLine("apicheck: " + args[1] + " is netstandard " + std.Assembly.Name.Version + ", want 2.0.0.0");
            return 2;
        }
        var bad = new SortedSet<string>();
        foreach (var a in sdk.AssemblyReferences)
        {
            if (a.Name != "mscorlib" && a.Name != "System" && a.Name != "System.Core" && a.Name != "netstandard")
            {
                bad.Add("assembly " + a.Name);
            }
        }
        Action<TypeReference, string> check = null;
        check = (t, where) =>
        {
            if (t == null || t is GenericParameter)
            {
                return;
            }
            var spec = t as TypeSpecification;
            if (spec != null)
            {
                check(spec.ElementType, where);
                var gi = t as GenericInstanceType;
                if (gi != null)
                {
                    foreach (var g in gi.GenericArguments)
                    {
                        check(g, where);
                    }
                }
                return;
            }
            if (t.Scope == sdk || t.Module == sdk && t.Scope is ModuleDefinition)
            {
                return; // the SDK's own
            }
            var name = t.FullName.Replace('/', '+');
            var top = t;
            while (top.DeclaringType != null)
            {
                top = top.DeclaringType;
            }
            if (!allowed.Contains(top.FullName))
            {
                bad.Add(name + " (in " + where + ")");
            }
        };
        foreach (var t in sdk.GetTypeReferences())
        {
            check(t, "type references");
        }
        foreach (var m in sdk.GetMemberReferences())
        {
            check(m.DeclaringType, m.FullName);
            var mr = m as MethodReference;
            if (mr != null)
            {
                check(mr.ReturnType, m.FullName);
                foreach (var p in mr.Parameters)
                {
                    check(p.ParameterType, m.FullName);
                }
            }
            var fr = m as FieldReference;
            if (fr != null)
            {
                check(fr.FieldType, m.FullName);
            }
        }
        foreach (var b in bad)
        {
            Console.Error.WriteLine("apicheck: not in .NET Standard 2.0: " + b);
        }
        if (bad.Count > 0)
        {
            return 1;
        }
        Console.WriteLine("apicheck: " + sdk.GetTypeReferences().Count() + " types and " + sdk.GetMemberReferences().Count() +
            " members referenced, all in .NET Standard 2.0 (" + allowed.Count + " types)");
        return 0;
    }
}
